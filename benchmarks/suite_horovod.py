"""Horovod on one machine: ``horovodrun -np 2`` (one intra-op thread each) against one process
with two threads, same model and global batch.

    python benchmarks/train_throughput.py --suite=horovod [--quick]

Both run the trainer's step (benchmarks/suite_precision.py: build_training_step) on resnet_v1_50
in float32 with a fixed synthetic batch; the two Horovod workers take half the global batch each
and allreduce their gradients through Gloo.  Images/s counts the global batch; Horovod's start-up
and the first steps are left out.  The two set-ups take turns for several rounds and each cell is
the median.  On a machine shared with other work, wall-clock images/s also measures how large a
share of the cores each set-up wins from the others, so the table adds images per CPU-second
(the CPU time of every thread of the processes, Horovod's background threads included).
"""
import json
import os
import re
import subprocess
import sys
import time

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
        for _ in range(warmup):
            sess.run(train_op)
        cpu = time.process_time()  # every thread of this process, Horovod's included
        sec = common.time_steps(sess, train_op, steps, 0)
        cpu = time.process_time() - cpu
    images = batch_size * 3 * max(1, steps // 3)  # what time_steps ran
    print(json.dumps({"rank": cluster.rank, "images_per_sec": batch_size * cluster.size / sec,
                      "images": images, "cpu_sec": cpu}), flush=True)


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
    # horovodrun prefixes each worker's lines with "[rank]<stdout>:".
    results = [json.loads(re.search(r"\{.*\}", ln).group(0)) for ln in proc.stdout.splitlines()
               if '"images_per_sec"' in ln]
    if proc.returncode != 0 or not results:
        raise RuntimeError("%s failed:\n%s\n%s" % (" ".join(cmd), proc.stdout[-2000:],
                                                   proc.stderr[-3000:]))
    chief = [r for r in results if r["rank"] == 0][0]
    return (chief["images_per_sec"],
            sum(r["images"] for r in results) / sum(r["cpu_sec"] for r in results))


SETUPS = (
    # (label, role, extra environment)
    ("1 process, 2 intra-op threads", "single", None),
    ("horovodrun -np 2, 1 thread each (HOROVOD_CYCLE_TIME=10, fastnn's CPU default)",
     "horovod", None),
    ("horovodrun -np 2, 1 thread each, HOROVOD_CYCLE_TIME=1 (Horovod's default)", "horovod",
     {"HOROVOD_CYCLE_TIME": "1"}),
)


def run(args):
    configs = [(112, 16)] if args.quick else [(112, 16), (224, 16)]
    steps, warmup, rounds = (3, 1, 1) if args.quick else (6, 2, 2)
    load = os.getloadavg()[0]
    rows = []
    for size, batch in configs:
        rates = {label: [] for label, _, _ in SETUPS}
        for _ in range(rounds):
            for label, role, env in SETUPS:
                rates[label].append(_measure(role, size, batch, steps, warmup, env))
        base = np.median(rates[SETUPS[0][0]], axis=0)
        for label, _, _ in SETUPS:
            rate, per_cpu = np.median(rates[label], axis=0)
            rows.append(["%dx%d" % (size, size), batch, label, float(rate), rate / base[0],
                         float(per_cpu), per_cpu / base[1]])
    common.print_table(
        "resnet_v1_50 float32 training on 2 cores: Horovod (Gloo) vs one process, same global "
        "batch (median of %d round(s) of %d steps; 1-min load average %.1f before)"
        % (rounds, steps, load), ["image", "global batch", "set-up", "images/s",
                                  "vs one process", "images per CPU-second", "vs one process"],
        rows)
    return {"rows": rows}


if __name__ == "__main__":
    _worker(sys.argv[1], *(int(a) for a in sys.argv[2:7]))
