"""XLA's JIT against TensorFlow's own kernels: resnet_v1_50 training images/s (``--xla``).

    python benchmarks/train_throughput.py --suite=xla [--quick]

The trainer's step (as in suite_precision) in float32, with and without the session's
``global_jit_level`` ON_1, each in its own process with the same ``TF_XLA_FLAGS``
(``--tf_xla_cpu_global_jit``, which the trainer sets, so CPUs cluster when a session asks).  The
processes take turns over the rounds and each cell is the median.  The XLA process traces one step
and reports whether its ops ran through XLA (``_XlaRun``), so the comparison cannot silently be
float32 against float32.  XLA compiles the step once, during the warm-up steps, which are not timed.
"""
import json
import os
import subprocess
import sys

import numpy as np

from benchmarks import common


def _worker(xla_on, image_size, batch_size, steps, warmup):
    """One measurement in this process; prints ``{"images_per_sec": ..., "xla_ops": [...]}``."""
    import tensorflow.compat.v1 as tf
    from benchmarks.suite_precision import build_training_step
    from images.utils import xla
    graph, train_op = build_training_step("resnet_v1_50", batch_size, image_size, tf.float32)
    with graph.as_default():
        init = tf.global_variables_initializer()
    config = xla.configure_session(common.session_config(), bool(xla_on))
    with tf.Session(graph=graph, config=config) as sess:
        sess.run(init)
        meta = tf.RunMetadata()
        sess.run(train_op, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE),
                 run_metadata=meta)
        sec = common.time_steps(sess, train_op, steps, warmup)
    print(json.dumps({"images_per_sec": batch_size / sec,
                      "xla_ops": sorted(xla.compiled_ops(meta))}), flush=True)


def _measure(xla_on, image_size, batch_size, steps, warmup):
    from images.utils import xla
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=common.ROOT)
    xla.allow_cpu_jit(env)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.suite_xla", str(int(xla_on)),
                           str(image_size), str(batch_size), str(steps), str(warmup)],
                          cwd=common.ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError("xla=%s failed:\n%s" % (xla_on, proc.stderr[-3000:]))
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if bool(out["xla_ops"]) != bool(xla_on):
        raise RuntimeError("xla=%s but the traced step ran XLA ops %s" % (xla_on, out["xla_ops"]))
    return out["images_per_sec"]


def run(args):
    configs = [(112, 8)] if args.quick else [(224, 16)]
    steps, warmup, rounds = (3, 1, 1) if args.quick else (6, 2, 2)
    rows = []
    for size, batch in configs:
        rates = {False: [], True: []}
        for _ in range(rounds):
            for xla_on in (False, True):
                rates[xla_on].append(_measure(xla_on, size, batch, steps, warmup))
        base = float(np.median(rates[False]))
        for xla_on in (False, True):
            rate = float(np.median(rates[xla_on]))
            rows.append(["%dx%d" % (size, size), batch, "XLA JIT (--xla)" if xla_on else
                         "TensorFlow kernels", rate, rate / base])
    common.print_table(
        "resnet_v1_50 training, XLA vs not, float32 on this CPU (median of %d round(s) of %d "
        "steps; 1-minute load %.1f)" % (rounds, steps, os.getloadavg()[0]),
        ["image", "batch", "compiled by", "images/s", "vs TensorFlow kernels"], rows)
    return {"rows": rows}


if __name__ == "__main__":
    _worker(*(int(a) for a in sys.argv[1:6]))
