"""resnet_v1_50 under oneDNN's bfloat16 graph rewrite against float32, same graph and weights.

    TF_ENABLE_ONEDNN_OPTS=1 python tests/hvd_scripts/bf16_rewrite.py SIZE BATCH STEPS

Run in a fresh process by tests/test_precision.py: TensorFlow reads TF_ENABLE_ONEDNN_OPTS when it
is imported, and turns oneDNN on by itself only on CPUs with AVX512-VNNI/BF16 or AMX.  Prints one
JSON line: the float32 and rewritten training losses per step, the inference-mode loss on the
initial weights, and how many convolutions ran in bfloat16.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

import images  # noqa: E402,F401  (compat shim)
from images import training  # noqa: E402
from images.models import model_factory  # noqa: E402
from images.utils import losses, precision  # noqa: E402


def main(size, batch, steps):
    policy = precision.resolve_policy(use_bf16=True, gpu_available=False)
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)
        x = tf.constant(np.random.RandomState(0).uniform(-1, 1, (batch, size, size, 3)),
                        tf.float32)
        y = tf.constant(np.arange(batch) % 10)
        net = model_factory.get_network_fn("resnet_v1_50", 10, weight_decay=1e-4,
                                           is_training=True)
        logits, _, _ = training.build_network(net, x, policy.build_dtype)
        loss, _ = losses.classification_loss(logits, y, 10)
        train_op = training.build_train_op(
            precision.GradientPolicyOptimizer(tf.train.MomentumOptimizer(1e-3, 0.9)), loss,
            tf.train.get_or_create_global_step())
        with tf.variable_scope(tf.get_variable_scope(), reuse=True):  # inference mode
            infer_net = model_factory.get_network_fn("resnet_v1_50", 10, is_training=False)
            infer_logits, _, _ = training.build_network(infer_net, x, policy.build_dtype)
        infer = tf.losses.sparse_softmax_cross_entropy(y, infer_logits, loss_collection=None)
        init = tf.global_variables_initializer()
    result = {"graph_rewrite": policy.graph_rewrite, "build_dtype": policy.build_dtype.name}
    for name, config in (("float32", tf.ConfigProto()),
                         ("rewrite", policy.configure_session(tf.ConfigProto()))):
        with tf.Session(graph=graph, config=config) as sess:
            sess.run(init)  # same seeds: the same initial weights in both sessions
            result[name + "_infer"] = float(sess.run(infer))
            meta = tf.RunMetadata()
            values = [sess.run([loss, train_op], options=tf.RunOptions(
                output_partition_graphs=True), run_metadata=meta)[0]]
            values += [sess.run([loss, train_op])[0] for _ in range(steps - 1)]
            result[name] = [float(v) for v in values]
            bf16 = tf.bfloat16.as_datatype_enum
            result[name + "_bf16_convs"] = sum(
                1 for g in meta.partition_graphs for n in g.node
                if "Conv2D" in n.op and "T" in n.attr and n.attr["T"].type == bf16)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
