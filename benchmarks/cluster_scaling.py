"""Two hosts over a limited link: step time and scaling of resnet_v1_50 training (issue 16).

    sudo .venv/bin/python benchmarks/cluster_scaling.py [--mode train|allreduce|both]
        [--rounds 2] [--quick] [--only LABEL,...]

Makes the test cluster (scripts/testcluster.sh up 2: hosts h1 and h2 as network namespaces on this
machine) and tears it down at the end.  Links are limited with ``tc`` tbf (``scripts/testcluster.sh
limit 1gbit``) in both directions; "veth" is no limit at all.  Each link rate's row also gives the
TCP throughput of one stream from h1 to h2 at that limit, which shows what the limit lets through.

``--mode train``: the trainer as a user runs it, ``horovodrun -np 2 -H h1:1,h2:1
--network-interface eth0 --gloo python train_image_classifiers.py ...`` launched on h1, one worker
per host with one intra-op thread each (each host has one of the machine's cores), against the
same command as a single process on h1 with one thread.  Step time is the mean of the per-step
``sec/step`` rank 0 logs (steps 5-12 by default: the start-up and first steps are left out).
Scaling is the job's images/s over the single worker's: 2.0 is perfect for two hosts.

``--mode allreduce``: the communication alone, which a loaded machine disturbs much less: both
workers allreduce tensors of the shapes of resnet_v1_50's 161 trainable variables (what the
trainer's distributed optimizer sends every step: 94 MB in float32) through ``hvd.allreduce``, with
the set-up's compression and Horovod settings, nothing else running in the step; seconds per
round (median of ``--allreduce_rounds``) and the rate it makes of the model's float32 bytes.

The set-ups take turns for ``--rounds`` rounds; each cell is the median over rounds.
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SCRIPT = os.path.join(ROOT, "scripts", "testcluster.sh")
BIN = os.path.dirname(sys.executable)

from benchmarks.common import print_table  # noqa: E402

# One worker's share of a model's gradients on the wire is about its size (ring allreduce of two).
TRAINER_ARGS = ["--model_name=resnet_v1_50", "--dataset_name=mock", "--num_classes=10",
                "--optimizer=momentum", "--learning_rate=0.01", "--use_bf16=False",
                "--use_fp16=False", "--num_intra_threads=1", "--num_inter_threads=1",
                "--log_loss_every_n_iters=1", "--save_checkpoints_steps=100000",
                "--save_summaries_steps=0"]

# (label, link rate or None, hvd_fp16_compression, extra horovodrun arguments)
SETUPS = [
    ("veth, no limit", None, False, []),
    ("veth, no limit, fp16 compression", None, True, []),
    ("10 Gbit/s", "10gbit", False, []),
    ("10 Gbit/s, fp16 compression", "10gbit", True, []),
    ("1 Gbit/s", "1gbit", False, []),
    ("1 Gbit/s, fp16 compression", "1gbit", True, []),
    ("1 Gbit/s, --cycle-time-ms 1 (Horovod's default)", "1gbit", False,
     ["--cycle-time-ms", "1"]),
    ("1 Gbit/s, --fusion-threshold-mb 0 (no fusion)", "1gbit", False,
     ["--fusion-threshold-mb", "0"]),
    ("1 Gbit/s, --fusion-threshold-mb 8", "1gbit", False, ["--fusion-threshold-mb", "8"]),
    # Not a Horovod setting but the trainer's: one allreduce per 4 backward passes.
    ("1 Gbit/s, --backward_passes_per_step=4", "1gbit", False, ["--backward_passes_per_step=4"]),
]


def _env():
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"], PYTHONPATH=ROOT,
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    # The same bound covers the start-up rendezvous: on a loaded machine one worker reached
    # hvd.init() more than 30 s (the default) after the other.
    env.setdefault("HOROVOD_GLOO_TIMEOUT_SECONDS", "180")
    return env


def cluster(*args, check=True):
    proc = subprocess.run(["bash", SCRIPT] + list(args), cwd=ROOT, env=_env(),
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError("testcluster.sh %s failed (%d):\n%s\n%s" % (
            " ".join(args), proc.returncode, proc.stdout[-3000:], proc.stderr[-5000:]))
    return proc


def step_time(output, skip):
    """Mean ``sec/step`` of rank 0's log lines after the first ``skip`` logged steps.

    The mean, not the median: with --backward_passes_per_step=k only every k-th step carries
    the allreduce (keep the window a multiple of k: steps 5-12 by default).
    """
    times = [float(s) for s in re.findall(r"\[rank 0\] INFO step=\d+,.*?sec/step=([\d.]+)",
                                          output)]
    if len(times) <= skip:
        raise RuntimeError("too few steps logged:\n" + output[-4000:])
    return statistics.mean(times[skip:])


def measure(args, setup, train_dir):
    common = [os.path.join(ROOT, "train_image_classifiers.py"), "--train_dir=" + train_dir,
              "--train_image_size=%d" % args.image_size, "--batch_size=%d" % args.batch_size,
              "--stop_at_step=%d" % args.steps] + TRAINER_ARGS
    if setup is None:  # one worker alone: no horovodrun
        cmd = ["python"] + common
    else:
        _, _, fp16, extra = setup
        launcher = [a for a in extra if not a.startswith("--backward")]
        trainer = [a for a in extra if a.startswith("--backward")]
        cmd = (["horovodrun", "-np", "2", "-H", "h1:1,h2:1", "--network-interface", "eth0",
                "--gloo"] + launcher + ["python"] + common + trainer
               + ["--hvd_fp16_compression=%s" % fp16])
    subprocess.run(["rm", "-rf", train_dir])
    proc = cluster("exec", "h1", *cmd, check=False)
    if proc.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (" ".join(cmd), proc.stderr[-5000:]))
    return step_time(proc.stdout + proc.stderr, args.skip)


def allreduce_worker(compression, rounds):
    """Under horovodrun: times the allreduce of resnet_v1_50's gradient shapes; rank 0 prints
    ``{"sec": ..., "bytes": ...}``."""
    import json
    import numpy as np
    import tensorflow.compat.v1 as tf
    import images  # noqa: F401  (compat shim)
    from images.models import model_factory
    from images.utils import distributed
    cluster = distributed.init_cluster(True)
    hvd = cluster.hvd
    with tf.Graph().as_default():
        net = model_factory.get_network_fn("resnet_v1_50", 10, weight_decay=1e-4,
                                           is_training=True)
        net(tf.placeholder(tf.float32, [1, 64, 64, 3]))
        shapes = [v.shape.as_list() for v in tf.trainable_variables()]
    comp = {"none": hvd.Compression.none, "fp16": hvd.Compression.fp16}[compression]
    with tf.Graph().as_default():
        grads = [tf.Variable(tf.random.normal(shape, seed=cluster.rank)) for shape in shapes]
        # Fetch something computed from every result: a tf.group of the allreduce ops alone
        # was pruned after the first run here (0.2 ms "per allreduce" of 94 MB).
        step = tf.add_n([tf.reduce_sum(hvd.allreduce(g, compression=comp)) for g in grads])
        config = tf.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=2)
        with tf.Session(config=config) as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(2):
                sess.run(step)
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                sess.run(step)
                times.append(time.perf_counter() - start)
    if cluster.rank == 0:
        print(json.dumps({"sec": statistics.median(times), "tensors": len(shapes),
                          "bytes": 4 * int(sum(np.prod(s) for s in shapes))}), flush=True)


def measure_allreduce(args, setup):
    _, _, fp16, extra = setup
    cmd = (["horovodrun", "-np", "2", "-H", "h1:1,h2:1", "--network-interface", "eth0", "--gloo"]
           + extra + ["python", os.path.abspath(__file__), "--allreduce_worker",
                      "--compression", "fp16" if fp16 else "none",
                      "--allreduce_rounds", str(args.allreduce_rounds)])
    proc = cluster("exec", "h1", *cmd, check=False)
    found = re.search(r"\{\"sec\".*\}", proc.stdout)
    if proc.returncode != 0 or not found:
        raise RuntimeError("%s failed:\n%s" % (" ".join(cmd), proc.stderr[-5000:]))
    import json
    return json.loads(found.group(0))


TCP_PROGRAM = r"""
import socket, sys, time
role, size = sys.argv[1], int(sys.argv[2])
if role == "recv":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 5999)); s.listen(1); c, _ = s.accept(); got = 0
    while got < size:
        data = c.recv(1 << 20)
        if not data: break
        got += len(data)
    c.sendall(b"k")
else:
    c = socket.create_connection(("h2", 5999)); chunk = b"x" * (1 << 20); start = time.time()
    for _ in range(size >> 20): c.sendall(chunk)
    c.recv(1); print("%.4f" % (size / (time.time() - start) / 1e9))
"""


def tcp_gbytes_per_sec(size=200 << 20):
    """GB/s of one TCP stream from h1 to h2 under the present limit."""
    recv = subprocess.Popen(["bash", SCRIPT, "exec", "h2", sys.executable, "-c", TCP_PROGRAM,
                             "recv", str(size)], cwd=ROOT, env=_env())
    time.sleep(1.0)
    try:
        out = cluster("exec", "h1", sys.executable, "-c", TCP_PROGRAM, "send", str(size))
        return float(out.stdout.strip())
    finally:
        recv.wait(timeout=60)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("train", "allreduce", "both"), default="both")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=8, help="per worker")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--skip", type=int, default=3, help="logged steps left out")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--allreduce_rounds", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="one round, fewer set-ups")
    parser.add_argument("--only", default="", help="comma-separated substrings: only the "
                        "set-ups whose label contains one (the single worker always runs)")
    parser.add_argument("--allreduce_worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compression", default="none", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.allreduce_worker:
        return allreduce_worker(args.compression, args.allreduce_rounds)
    if os.geteuid() != 0:
        raise SystemExit("needs root: the two hosts are network namespaces")
    setups = SETUPS[:1] + SETUPS[4:6] if args.quick else SETUPS
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        setups = [s for s in setups if any(w in s[0] for w in wanted)]
        if not setups:
            raise SystemExit("--only %r matches no set-up; labels: %s"
                             % (args.only, "; ".join(s[0] for s in SETUPS)))
    train = args.mode in ("train", "both")
    allreduce = args.mode in ("allreduce", "both")
    rounds = 1 if args.quick else args.rounds
    load = os.getloadavg()[0]
    train_dir = "/tmp/fastnn-cluster-bench"
    # A plain SIGTERM would skip the `finally` below and leave the cluster up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cluster("up", "2")
    try:
        link, single = {}, []
        times = {s[0]: [] for s in setups}
        comm = {s[0]: [] for s in setups}
        for _ in range(rounds):
            if train:
                cluster("limit", "none")
                single.append(measure(args, None, train_dir))
            for setup in setups:
                cluster("limit", setup[1] or "none")
                if setup[1] not in link:
                    link[setup[1]] = tcp_gbytes_per_sec()
                if allreduce and not any(a.startswith("--backward") for a in setup[3]):
                    comm[setup[0]].append(measure_allreduce(args, setup))
                    print("  %s: allreduce %.3f s" % (setup[0], comm[setup[0]][-1]["sec"]),
                          flush=True)
                if train:
                    times[setup[0]].append(measure(args, setup, train_dir))
                    print("  %s: %.3f s/step" % (setup[0], times[setup[0]][-1]), flush=True)
        load_after = os.getloadavg()[0]
    finally:
        cluster("down", check=False)
        subprocess.run(["rm", "-rf", train_dir])
    if allreduce:
        first = next(c[0] for c in comm.values() if c)
        rows = []
        for label, rate, _, _ in setups:
            if not comm[label]:
                continue
            sec = statistics.median(c["sec"] for c in comm[label])
            rows.append([label, "%.3g" % link[rate], "%.3f" % sec,
                         "%.3g" % (first["bytes"] / sec / 1e9)])
        print_table(
            "allreduce of resnet_v1_50's %d gradient tensors (%.0f MB in float32), 2 hosts x 1 "
            "worker (median of %d round(s) of %d; 1-min load average %.1f before, %.1f after)"
            % (first["tensors"], first["bytes"] / 1e6, rounds, args.allreduce_rounds, load,
               load_after),
            ["set-up", "TCP GB/s h1->h2", "sec per allreduce", "float32 GB/s"], rows)
    if train:
        one = statistics.median(single)
        rows = [["1 worker on h1 (1 thread), no horovodrun", "-", "%.3f" % one, "%.1f" % (
            args.batch_size / one), "1", "-"]]
        for label, rate, _, _ in setups:
            sec = statistics.median(times[label])
            rows.append(["2 hosts x 1 worker: " + label, "%.3g" % link[rate], "%.3f" % sec,
                         "%.1f" % (2 * args.batch_size / sec), "%.2f" % (2 * one / sec),
                         "%.3f" % (sec - one)])
        print_table(
            "resnet_v1_50 float32 training, %dx%d, batch %d per worker, 2 hosts over one link "
            "(median of %d round(s); 1-min load average %.1f before, %.1f after)"
            % (args.image_size, args.image_size, args.batch_size, rounds, load, load_after),
            ["set-up", "TCP GB/s h1->h2", "sec/step", "images/s", "scaling (2.0 ideal)",
             "step time over 1 worker (s)"], rows)


if __name__ == "__main__":
    main()
