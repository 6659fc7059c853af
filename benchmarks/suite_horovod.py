"""Horovod on one machine: ``horovodrun -np 2`` (one intra-op thread each) against one process
with two threads, same model and global batch.

    python benchmarks/train_throughput.py --suite=horovod [--quick]

Both run the trainer's step (benchmarks/suite_precision.py: build_training_step) on resnet_v1_50
in float32 with a fixed synthetic batch; the two Horovod workers take half the global batch each
and allreduce their gradients through Gloo.  Images/s counts the global batch; Horovod's start-up
and the first steps are left out.  The two set-ups take turns for several rounds and each cell is
the median, so load from other work hits both alike.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np

from benchmarks import common

BIN = os.path.dirname(sys.executable)


def _worker(role, image_size, batch_size, steps, warmup, threads):
    """One measurement; under horovodrun rank 0 prints the job's ``images_per_sec``."""
    import tensorflow.compat.v1 as tf
    from benchmarks.suite_precision import build_training_step
    from images.utils import distributed
    cluster = distributed.init_cluster(role == "horovod")
    graph, train_op = build_training_step("resnet_v1_50", batch_size, image_size, tf.float32,
                                          cluster=cluster if cluster.distributed else None)
    with graph.as_default():
        init = tf.global_variables_initializer()
        bcast = cluster.hvd.broadcast_global_variables(0) if cluster.distributed else None
    config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=threads)
    with tf.Session(graph=graph, config=config) as sess:
        sess.run(init)
        if bcast is not None:
            sess.run(bcast)
        sec = common.time_steps(sess, train_op, steps, warmup)
    if cluster.is_chief:
        print(json.dumps({"images_per_sec": batch_size * cluster.size / sec,
                          "workers": cluster.size}), flush=True)


def _measure(role, image_size, global_batch, steps, warmup, env_extra=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=common.ROOT,
               PATH=BIN + os.pathsep + os.environ.get("PATH", ""), **(env_extra or {}))
    if role == "horovod":
        cmd = [os.path.join(BIN, "horovodrun"), "-np", "2", "-H", "localhost:2", "--gloo",
               sys.executable, "-m", "benchmarks.suite_horovod", "horovod", str(image_size),
               str(global_batch // 2), str(steps), str(warmup), "1"]
    else:
        cmd = [sys.executable, "-m", "benchmarks.suite_horovod", "single", str(image_size),
               str(global_batch), str(steps), str(warmup), "2"]
    proc = subprocess.run(cmd, cwd=common.ROOT, env=env, capture_output=True, text=True,
                          check=False)
    lines = [ln for ln in proc.stdout.splitlines() if '"images_per_sec"' in ln]
    if proc.returncode != 0 or not lines:
        raise RuntimeError("%s failed:\n%s\n%s" % (" ".join(cmd), proc.stdout[-2000:],
                                                   proc.stderr[-3000:]))
    # horovodrun prefixes each worker's lines with "[rank]<stdout>:".
    return json.loads(re.search(r"\{.*\}", lines[-1]).group(0))["images_per_sec"]


SETUPS = (
    # (label, role, extra environment)
    ("1 process, 2 intra-op threads", "single", None),
    ("horovodrun -np 2, 1 thread each", "horovod", None),
)


def run(args):
    configs = [(112, 16)] if args.quick else [(112, 16), (224, 16)]
    steps, warmup, rounds = (3, 1, 1) if args.quick else (6, 2, 2)
    rows = []
    for size, batch in configs:
        rates = {label: [] for label, _, _ in SETUPS}
        for _ in range(rounds):
            for label, role, env in SETUPS:
                rates[label].append(_measure(role, size, batch, steps, warmup, env))
        base = float(np.median(rates[SETUPS[0][0]]))
        for label, _, _ in SETUPS:
            rate = float(np.median(rates[label]))
            rows.append(["%dx%d" % (size, size), batch, label, rate, rate / base])
    common.print_table(
        "resnet_v1_50 float32 training on 2 cores: Horovod (Gloo) vs one process, same global "
        "batch (median of %d round(s) of %d steps)" % (rounds, steps),
        ["image", "global batch", "set-up", "images/s", "vs one process"], rows)
    return {"rows": rows}


if __name__ == "__main__":
    _worker(sys.argv[1], *(int(a) for a in sys.argv[2:7]))
