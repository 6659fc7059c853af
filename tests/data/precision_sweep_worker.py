#!/usr/bin/env python
"""Trains registry networks one step each in a 16-bit compute type (float32 master weights).

    python tests/data/precision_sweep_worker.py OUT.jsonl SPEC [SPEC ...]

A SPEC is ``name:dtype:size:batch`` (dtype ``float32``, ``float16`` or ``bfloat16``),
optionally followed by ``:`` and a JSON object of network options (e.g.
``{"global_pool": true}``).  For each, one graph is built as the trainer builds it
(:func:`images.training.build_network`, the classification loss with the auxiliary head,
:class:`GradientPolicyOptimizer` with dynamic loss scaling for float16,
:func:`images.training.build_train_op`) on a batch of random images, and steps run until one is
applied (dynamic scaling skips steps whose gradients overflow and halves the scale).  One JSON line per SPEC goes to
OUT.jsonl: the losses, whether the weights moved, the variables' types, the ops built in
float32 by :func:`images.utils.precision.float32_fallback` (``{"LRN,bfloat16": 2}``), the CPU
seconds, and the error if any.  Used by tests/test_precision.py; all
networks of a group share one TensorFlow start.
"""
import json
import os
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

import images  # noqa: E402,F401  (compat shim)
from images import training  # noqa: E402
from images.models import model_factory  # noqa: E402
from images.utils import losses, precision  # noqa: E402
import worker_memory  # noqa: E402  (beside this script)

NUM_CLASSES, MAX_STEPS = 5, 6
# Batch norm over two examples of 1x1 maps makes the initial gradients large (about 2e3 for
# resnet_v1_50): a float16 scale above ~16 overflows at first, so start low and let it adapt.
FLOAT16_INITIAL_SCALE = 8.0


def run_one(name, dtype_name, size, batch, options):
    """Builds and trains ``name``; returns the JSON-able outcome."""
    dtype = precision.COMPUTE_DTYPES[dtype_name]
    outcome = {"name": name, "dtype": dtype_name, "size": size, "batch": batch,
               "options": options}
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(1)
        rng = np.random.RandomState(0)
        images_in = tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)), tf.float32)
        labels = tf.constant(np.arange(batch) % NUM_CLASSES)
        global_step = tf.train.get_or_create_global_step()
        network_fn = model_factory.get_network_fn(name, NUM_CLASSES, weight_decay=1e-4,
                                                  is_training=True, **options)
        fallbacks_before = dict(precision.FALLBACK_COUNTS)
        logits, _, aux = training.build_network(network_fn, images_in, dtype)
        loss, _ = losses.classification_loss(logits, labels, NUM_CLASSES, aux_logits=aux)
        scale = (precision.LossScaleConfig("dynamic", FLOAT16_INITIAL_SCALE, 2000,
                                           FLOAT16_INITIAL_SCALE)
                 if dtype == tf.float16 else precision.LossScaleConfig())
        optimizer = precision.GradientPolicyOptimizer(
            tf.train.MomentumOptimizer(0.01, 0.9), scale, max_gradient_norm=5.0)
        train_op = training.build_train_op(optimizer, loss, global_step)
        outcome["float32_fallbacks"] = {
            "%s,%s" % key: count - fallbacks_before.get(key, 0)
            for key, count in precision.FALLBACK_COUNTS.items()
            if count != fallbacks_before.get(key, 0)}
        outcome["variable_dtypes"] = sorted({v.dtype.base_dtype.name
                                             for v in tf.global_variables()})
        outcome["logits_dtype"] = logits.dtype.name
        weights = tf.trainable_variables()
        config = tf.ConfigProto()
        # Grappler adds nothing a one-step check needs and takes seconds on the large graphs.
        config.graph_options.rewrite_options.disable_meta_optimizer = True
        with tf.Session(config=config) as sess:
            sess.run(tf.global_variables_initializer())
            start = sess.run(weights)
            outcome["losses"] = []
            for _ in range(MAX_STEPS):
                outcome["losses"].append(float(sess.run(loss)))
                sess.run(train_op)
                if any(not np.array_equal(a, b) for a, b in zip(start, sess.run(weights))):
                    break
            after = sess.run(weights)
            outcome["moved"] = sum(not np.array_equal(a, b) for a, b in zip(start, after))
            outcome["finite"] = all(np.isfinite(v).all() for v in after)
            outcome["loss_scale"] = float(sess.run(optimizer.loss_scale()))
    return outcome


def main(argv):
    out, specs = argv[1], argv[2:]
    for i, spec in enumerate(specs):
        name, dtype_name, size, batch, *rest = spec.split(":", 4)
        options = json.loads(rest[0]) if rest else {}
        start, cpu = time.time(), time.process_time()
        try:
            outcome = run_one(name, dtype_name, int(size), int(batch), options)
        except Exception:  # noqa: B902  (any failure is this network's result)
            outcome = {"name": name, "dtype": dtype_name, "size": int(size),
                       "error": traceback.format_exc()[-3000:]}
        outcome["seconds"] = round(time.time() - start, 1)
        outcome["cpu_seconds"] = round(time.process_time() - cpu, 1)
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(outcome) + "\n")
        worker_memory.restart_if_large(os.path.abspath(__file__), [out], specs[i + 1:])


if __name__ == "__main__":
    main(sys.argv)
