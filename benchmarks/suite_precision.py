"""bfloat16 against float32: resnet_v1_50 training images/s on this CPU.

    python benchmarks/train_throughput.py --suite=precision [--quick]

Four ways, each in its own process because TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` at import
(it turns oneDNN on by itself only on CPUs with AVX512-VNNI/BF16 or AMX):

* float32, TensorFlow's default kernels for this CPU;
* bfloat16 through the custom getter (float32 master weights cast on read), same kernels;
* float32 with oneDNN forced on;
* bfloat16 through oneDNN's ``auto_mixed_precision_onednn_bfloat16`` graph rewrite.

The step is the trainer's (softmax cross-entropy, weight decay, momentum, batch-norm updates) on a
fixed synthetic batch.  The processes take turns (round robin, several rounds) and each cell is the
median, so load from other work hits every way alike.
"""
import json
import os
import subprocess
import sys

import numpy as np

from benchmarks import common

MODES = (
    # (label, TF_ENABLE_ONEDNN_OPTS, precision)
    ("float32", "0", "float32"),
    ("bfloat16, custom getter", "0", "getter"),
    ("float32, oneDNN on", "1", "float32"),
    ("bfloat16, oneDNN rewrite", "1", "rewrite"),
)


def build_training_step(model_name, batch_size, image_size, compute_dtype, num_classes=1000,
                        cluster=None):
    """The trainer's training step on a fixed random batch; returns ``(graph, train_op)``.

    ``cluster`` (from :func:`images.utils.distributed.init_cluster`) wraps the optimizer in
    Horovod's when it is distributed.
    """
    import tensorflow.compat.v1 as tf
    from images import training
    from images.models import model_factory
    from images.utils import distributed, losses, precision
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)
        rng = np.random.RandomState(0 if cluster is None else cluster.rank)
        images = tf.constant(rng.uniform(-1, 1, (batch_size, image_size, image_size, 3)),
                             tf.float32)
        labels = tf.constant(rng.randint(0, num_classes, batch_size))
        network_fn = model_factory.get_network_fn(model_name, num_classes, weight_decay=1e-4,
                                                  is_training=True)
        logits, _, _ = training.build_network(network_fn, images, compute_dtype)
        loss, _ = losses.classification_loss(logits, labels, num_classes)
        opt = precision.GradientPolicyOptimizer(tf.train.MomentumOptimizer(0.01, 0.9))
        if cluster is not None:
            opt = distributed.distributed_optimizer(cluster, opt)
        train_op = training.build_train_op(opt, loss, tf.train.get_or_create_global_step())
    return graph, train_op


def _worker(mode, image_size, batch_size, steps, warmup):
    """One measurement in this process; prints ``{"images_per_sec": ...}``."""
    import tensorflow.compat.v1 as tf
    from images.utils import precision
    policy = {"float32": precision.PrecisionPolicy(),
              "getter": precision.PrecisionPolicy(tf.bfloat16, False),
              "rewrite": precision.PrecisionPolicy(tf.bfloat16, True)}[mode]
    if policy.graph_rewrite and not precision.onednn_enabled():
        raise SystemExit("the rewrite needs TF_ENABLE_ONEDNN_OPTS=1")
    graph, train_op = build_training_step("resnet_v1_50", batch_size, image_size,
                                          policy.build_dtype)
    with graph.as_default():
        init = tf.global_variables_initializer()
    with tf.Session(graph=graph, config=policy.configure_session(common.session_config())) as s:
        s.run(init)
        sec = common.time_steps(s, train_op, steps, warmup)
    print(json.dumps({"images_per_sec": batch_size / sec}), flush=True)


def _measure(onednn, mode, image_size, batch_size, steps, warmup):
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=common.ROOT)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.suite_precision", mode,
                           str(image_size), str(batch_size), str(steps), str(warmup)],
                          cwd=common.ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (mode, proc.stderr[-3000:]))
    return json.loads(proc.stdout.strip().splitlines()[-1])["images_per_sec"]


def run(args):
    from images.utils import precision
    native = precision.cpu_has_native_bf16()
    # Without bfloat16 instructions a bfloat16 step at 224x224 x 16 takes minutes here: that size
    # is measured in float32 only.
    configs = [(112, 8, MODES)] + ([] if args.quick else [
        (224, 16, MODES if native else [m for m in MODES if m[2] == "float32"])])
    steps, warmup, rounds = (3, 1, 1) if args.quick else (4, 1, 2)
    rows = []
    for size, batch, modes in configs:
        rates = {label: [] for label, _, _ in modes}
        for _ in range(rounds):
            for label, onednn, mode in modes:
                rates[label].append(_measure(onednn, mode, size, batch, steps, warmup))
        base = float(np.median(rates["float32"]))
        for label, _, _ in modes:
            rate = float(np.median(rates[label]))
            rows.append(["%dx%d" % (size, size), batch, label, rate, rate / base])
    common.print_table(
        "resnet_v1_50 training, bfloat16 vs float32 (CPU %s bfloat16 instructions; median of %d "
        "round(s) of %d steps)" % ("with" if native else "WITHOUT", rounds, steps),
        ["image", "batch", "precision", "images/s", "vs float32"], rows)
    return {"rows": rows, "native_bf16": native}


if __name__ == "__main__":
    _worker(sys.argv[1], *(int(a) for a in sys.argv[2:6]))
