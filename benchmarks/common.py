"""Measurement helpers shared by the benchmark suites (run from the repository root).

Everything is measured in the same process and run, side by side, because the machine is shared and
noisy: absolute figures drift, ratios measured together hold.
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

import images  # noqa: E402,F401  (compat shim)


def print_table(title, header, rows):
    """Prints a Markdown table (pasteable into docs/BENCHMARKS.md)."""
    print("\n### %s\n" % title)
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(_fmt(c) for c in row) + " |")
    sys.stdout.flush()


def _fmt(c):
    if isinstance(c, float):
        return "%.3g" % c if abs(c) < 1000 else "%.0f" % c
    return str(c)


def session_config(threads=0):
    """Intra-op threads as given (0: TensorFlow's choice), one inter-op pool."""
    return tf.ConfigProto(intra_op_parallelism_threads=threads,
                          inter_op_parallelism_threads=threads or 0)


def matmul_peak_flops(dtype=tf.float32, n=2048, iters=10, threads=0, cpu_out=None):
    """FLOP/s of a large square matmul in this process: the practical peak for utilisation.

    ``cpu_out``, a list, receives the FLOPs per CPU-second (all threads of the process), which a
    loaded machine disturbs less than the wall-clock rate.
    """
    with tf.Graph().as_default():
        a = tf.Variable(tf.random.normal([n, n], dtype=tf.float32))
        b = tf.Variable(tf.random.normal([n, n], dtype=tf.float32))
        prod = tf.matmul(tf.cast(a, dtype), tf.cast(b, dtype))
        op = tf.reduce_sum(tf.cast(prod[:1, :1], tf.float32))
        with tf.Session(config=session_config(threads)) as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(op)
            start, cpu_start = time.perf_counter(), time.process_time()
            for _ in range(iters):
                sess.run(op)
            elapsed = time.perf_counter() - start
            if cpu_out is not None:
                cpu_out.append(2.0 * n ** 3 * iters / (time.process_time() - cpu_start))
    return 2.0 * n ** 3 * iters / elapsed


def graph_flops(graph, fetch_names=None):
    """Float operations TF's profiler counts in ``graph`` (static shapes needed)."""
    opts = tf.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    prof = tf.profiler.profile(graph, options=opts)
    return float(prof.total_float_ops)


def time_steps(sess, op, steps, warmup, feed_dict=None, cpu_out=None):
    """Seconds per step of ``op`` over ``steps`` runs after ``warmup`` runs (median of 3 blocks).

    ``cpu_out``, a list, receives the CPU-seconds per step (all threads of the process).
    """
    for _ in range(warmup):
        sess.run(op, feed_dict)
    blocks, cpu_blocks = [], []
    per_block = max(1, steps // 3)
    for _ in range(3):
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(per_block):
            sess.run(op, feed_dict)
        blocks.append((time.perf_counter() - start) / per_block)
        cpu_blocks.append((time.process_time() - cpu_start) / per_block)
    if cpu_out is not None:
        cpu_out.append(float(np.median(cpu_blocks)))
    return float(np.median(blocks))


def zoo_training_rate(model_name, batch_size, image_size=None, steps=6, warmup=2,
                      compute_dtype=tf.float32, num_classes=1000, threads=0, measure_flops=True,
                      cpu_out=None):
    """Images/s of one training step of a registry network on a fixed synthetic batch.

    The step is the trainer's own: network in ``compute_dtype`` with float32 master weights,
    softmax cross-entropy plus weight decay, momentum update and batch-norm updates.

    Returns:
      ``(images_per_sec, training_flops_per_image or None)``; the FLOPs come from TF's profiler
      on the whole training graph (forward, backward and update).  ``cpu_out``, a list, receives
      the CPU-seconds per step.
    """
    from images import training
    from images.models import model_factory
    from images.utils import losses
    record = model_factory.get_model_record(model_name)
    size = image_size or record.default_image_size
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)
        images = tf.constant(np.random.RandomState(0).uniform(
            -1, 1, (batch_size, size, size, 3)).astype(np.float32))
        labels = tf.constant(np.random.RandomState(1).randint(0, num_classes, batch_size))
        global_step = tf.train.get_or_create_global_step()
        network_fn = model_factory.get_network_fn(model_name, num_classes, weight_decay=1e-4,
                                                  is_training=True)
        logits, _, aux = training.build_network(network_fn, images, compute_dtype)
        loss, _ = losses.classification_loss(
            logits, labels, num_classes, aux_logits=aux if record.has_aux_logits else None)
        opt = tf.train.MomentumOptimizer(0.01, 0.9)
        train_op = training.build_train_op(opt, loss, global_step)
        flops = graph_flops(graph) / batch_size if measure_flops else None
        with tf.Session(config=session_config(threads)) as sess:
            sess.run(tf.global_variables_initializer())
            sec = time_steps(sess, train_op, steps, warmup, cpu_out=cpu_out)
    return batch_size / sec, flops
