#!/usr/bin/env python
"""How many classes fit in a fixed memory budget per process, and images/s at 1M classes.

    python benchmarks/large_scale.py [--budget_gib 6] [--workers 2]

Settings (embedding 512, batch 64 per worker, momentum, weight decay 5e-4, float32):

  (a)  whole-layer data parallel as the zoo's trainer builds a classifier head: slim FC logits
       with an L2 regulariser, softmax cross-entropy, hvd.DistributedOptimizer (gradients
       averaged), every variable broadcast from rank 0 -- what training a million-way
       classifier looks like without this package;
  (a') whole-layer data parallel through images.largescale (loss ``softmax``), with the same
       memory care as (b) and (c): the fairest like-for-like baseline, reported beside (a);
  (b)  ``dist_softmax``: the FC layer split by class over the workers;
  (c)  Partial FC: ``dist_softmax`` with ``sample_ratio`` 0.1;
  (d)  (c) with the FC shard's momentum kept in bfloat16 (``set_fc_momentum_dtype``): 6 instead
       of 8 bytes per FC parameter.

``--accuracy`` instead measures what the 16-bit momentum costs in accuracy on a small task (one
process): 1,000 classes of noisy 128-wide features (4 x a unit class centre + unit normal noise), the embedding layer and Partial FC 0.1, the
same seeds and steps with the momentum in float32, bfloat16 and float16; it prints the final
training loss and the top-1 accuracy on held-out samples over all classes.

The backbone is replaced by precomputed features (a fixed random batch of 512-wide vectors per
worker) followed by the trainable 512 -> 512 embedding layer, so the FC layer dominates memory and
time, as it does at a million classes.  Each trial is a fresh ``horovodrun`` job that builds the
training graph with the library's own code (fc_layer, train_graph; the zoo's training and
losses modules for (a)), runs a warm-up step (plus timed steps for throughput) and reports
each worker's peak resident memory (VmHWM); a watchdog thread ends a worker whose RSS passes the
budget.  The largest class count is found by doubling (each setting starting from the previous
one's result), then bisecting.  Prints a Markdown table.  About 25 minutes on a shared 2-core
machine.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODES = {
    "a": dict(label="(a) whole layer, data parallel (the zoo trainer's graph)", loss=None,
              ratio=None),
    "w": dict(label="(a') whole layer, data parallel, images.largescale `softmax`",
              loss="softmax", ratio=None),
    "b": dict(label="(b) dist_softmax", loss="dist_softmax", ratio=None),
    "c": dict(label="(c) Partial FC 0.1 (dist_softmax)", loss="dist_softmax", ratio=0.1),
    "d": dict(label="(d) Partial FC 0.1, FC momentum in bfloat16", loss="dist_softmax",
              ratio=0.1, slot="bfloat16"),
}
EMB, BATCH = 512, 64
OVER_EXIT = 3


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _watchdog(limit_kib):
    def watch():
        while True:
            if _status_kib("VmRSS") > limit_kib:
                print("RESULT " + json.dumps({"over": True, "rss_gib": _status_kib("VmRSS") / 2**20}),
                      flush=True)
                os._exit(OVER_EXIT)
            time.sleep(0.02)
    threading.Thread(target=watch, daemon=True).start()


def trial(mode, classes, steps, limit_gib):
    """One worker of a trial (run under horovodrun); prints ``RESULT {...}``."""
    _watchdog(int(limit_gib * 2**20))
    import numpy as np
    import tensorflow.compat.v1 as tf
    import images  # noqa: F401
    from images.largescale import embedding, fc_layer, fc_optimizer, losses, train_graph, trainer
    from images.largescale.collectives import Collectives
    from images.utils import distributed, precision

    cluster = distributed.init_cluster(True)
    comm = Collectives(cluster)
    spec = MODES[mode]
    rng = np.random.RandomState(cluster.rank)
    with tf.Graph().as_default():
        global_step = tf.train.get_or_create_global_step()
        features = tf.constant(rng.randn(BATCH, EMB).astype(np.float32))
        labels = tf.constant(rng.randint(0, classes, BATCH))
        emb = embedding.build_embedding(features, backbone=lambda x, is_training: x,
                                        emb_size=EMB, is_training=True, weight_decay=5e-4)
        if spec["loss"] is None:
            return _zoo_trial(cluster, emb, labels, classes, global_step, steps)
        loss_spec = losses.get_loss(spec["loss"])
        fc = fc_layer.build_fc_loss(emb, labels, num_classes=classes, loss_spec=loss_spec,
                                    comm=comm, sample_ratio=spec["ratio"], weight_decay=5e-4)
        reg = tf.add_n(tf.losses.get_regularization_losses())
        inner = tf.train.MomentumOptimizer(0.1, 0.9)
        if spec.get("slot"):
            inner = fc_optimizer.LowPrecisionMomentum(
                inner, [v for v in (fc.weights, fc.bias) if v is not None],
                fc_optimizer.SLOT_DTYPES[spec["slot"]])
        opt = precision.GradientPolicyOptimizer(inner)
        train_op = train_graph.build_train_op(opt, fc.loss + fc.reg_loss, reg,
                                              fc.shard_variables, comm, loss_spec.distributed,
                                              global_step)
        layer = [v for v in (fc.weights, fc.bias) if v is not None]
        fc_vars = {id(v) for v in layer} | {id(opt.get_slot(v, "momentum")) for v in layer}
        shared = [v for v in tf.global_variables() if id(v) not in fc_vars]
        bcast = cluster.hvd.broadcast_variables(shared, 0) if comm.active else tf.no_op()
        with tf.Session(config=trainer.large_layer_session_config()) as sess:
            sess.run(trainer.init_op_slots_first(fc.weights))
            sess.run(bcast)
            sess.run(train_op)  # warm-up: every buffer allocated
            start = time.perf_counter()
            for _ in range(steps):
                sess.run(train_op)
            elapsed = time.perf_counter() - start
    _report(cluster, steps, elapsed)


def _report(cluster, steps, elapsed):
    rate = BATCH * cluster.size * steps / elapsed if steps else float("nan")
    print("RESULT " + json.dumps({
        "over": False, "rank": cluster.rank, "peak_rss_gib": _status_kib("VmHWM") / 2**20,
        "images_per_sec": rate}), flush=True)


def _zoo_trial(cluster, emb, labels, classes, global_step, steps):
    """Setting (a): the classifier head as the zoo's trainer builds it (slim FC logits with L2,
    softmax cross-entropy, hvd.DistributedOptimizer, every variable broadcast from rank 0)."""
    import tensorflow.compat.v1 as tf
    import tf_slim as slim
    from images import training
    from images.utils import distributed, losses as zoo_losses, precision
    logits = slim.fully_connected(emb, classes, activation_fn=None,
                                  weights_regularizer=slim.l2_regularizer(5e-4), scope="logits")
    total, _ = zoo_losses.classification_loss(logits, labels, classes)
    opt = distributed.distributed_optimizer(
        cluster, precision.GradientPolicyOptimizer(tf.train.MomentumOptimizer(0.1, 0.9)))
    train_op = training.build_train_op(opt, total, global_step)
    bcast = cluster.hvd.broadcast_global_variables(0) if cluster.size > 1 else tf.no_op()
    with tf.Session(config=training.session_config()) as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(bcast)
        sess.run(train_op)
        start = time.perf_counter()
        for _ in range(steps):
            sess.run(train_op)
        elapsed = time.perf_counter() - start
    _report(cluster, steps, elapsed)


def run_trial(mode, classes, workers, steps, limit_gib, timeout=1200):
    """Runs one trial job; returns ``(fits, peak RSS GiB (max over workers), images/s)``."""
    horovodrun = os.path.join(os.path.dirname(sys.executable), "horovodrun")
    cmd = [horovodrun, "-np", str(workers), "-H", "localhost:%d" % workers, "--gloo",
           sys.executable, os.path.abspath(__file__), "--trial", "--mode", mode, "--classes",
           str(classes), "--steps", str(steps), "--limit_gib", str(limit_gib)]
    env = dict(os.environ, PYTHONPATH=ROOT, PATH=os.path.dirname(sys.executable) + os.pathsep
               + os.environ.get("PATH", ""))
    start = time.time()
    for attempt in range(2):
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
        results = [json.loads(line.split("RESULT ", 1)[1])
                   for line in proc.stdout.splitlines() if "RESULT " in line]
        if results:
            break
        # No worker reported (the launcher failed, e.g. a port taken by another job): retry once.
        print("   trial failed without a result (attempt %d): %s"
              % (attempt + 1, proc.stderr[-600:]), flush=True)
    done = [r for r in results if not r["over"]]
    fits = len(done) == workers and all(r["peak_rss_gib"] <= limit_gib for r in done)
    peak = max([r.get("peak_rss_gib", r.get("rss_gib", 0.0)) for r in results] or [float("nan")])
    rate = done[0]["images_per_sec"] if done else float("nan")
    print("   %s %9d classes, %d worker(s): %s, peak %.2f GiB, %s images/s, %.1f s" % (
        mode, classes, workers, "fits" if fits else "does not fit", peak,
        "%.1f" % rate if rate == rate else "-", time.time() - start), flush=True)
    return fits, peak, rate


def largest_fitting(mode, workers, budget, start, bisections):
    """Doubling from ``start`` until a trial fails, then ``bisections`` bisection steps."""
    good, bad, peak_good = None, None, None
    c = start
    while bad is None:
        fits, peak, _ = run_trial(mode, c, workers, 0, budget)
        if fits:
            good, peak_good = c, peak
            c *= 2
        else:
            bad = c
            if good is None:  # even the start does not fit: halve instead
                bad, c = None, c // 2
                if c < 1000:
                    return 0, float("nan")
                start = c
    for _ in range(bisections):
        mid = (good + bad) // 2
        fits, peak, _ = run_trial(mode, mid, workers, 0, budget)
        if fits:
            good, peak_good = mid, peak
        else:
            bad = mid
    return good, peak_good


def _mem_available_gib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trial", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=sorted(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--classes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--limit_gib", type=float, default=6.0, help=argparse.SUPPRESS)
    parser.add_argument("--budget_gib", type=float, default=6.0,
                        help="peak RSS allowed per worker process")
    parser.add_argument("--workers", type=int, default=2, help="Horovod workers")
    parser.add_argument("--start", type=int, default=262144, help="first class count tried")
    parser.add_argument("--bisections", type=int, default=2,
                        help="bisection steps after doubling (precision: 1/2^n of the last "
                             "doubling)")
    parser.add_argument("--rate_classes", type=int, default=1000000,
                        help="class count of the throughput measurement")
    parser.add_argument("--rate_steps", type=int, default=1, help="timed steps per throughput "
                        "(after one warm-up step)")
    parser.add_argument("--modes", default="awbcd", help="which settings to run")
    parser.add_argument("--accuracy", action="store_true",
                        help="measure the accuracy effect of a 16-bit FC momentum instead")
    parser.add_argument("--accuracy_steps", type=int, default=1000)
    parser.add_argument("--rate_modes", default="abcd",
                        help="settings whose images/s at --rate_classes is measured")
    args = parser.parse_args()
    if args.trial:
        trial(args.mode, args.classes, args.steps, args.limit_gib)
        return 0
    if args.accuracy:
        return accuracy_effect(args.accuracy_steps)

    print("budget %.1f GiB peak RSS per process, %d workers, embedding %d, batch %d per worker;"
          " precomputed features + 512x512 embedding layer as the backbone"
          % (args.budget_gib, args.workers, EMB, BATCH), flush=True)
    found = {}
    start = args.start
    for mode in args.modes:
        print("searching %s" % MODES[mode]["label"], flush=True)
        found[mode] = largest_fitting(mode, args.workers, args.budget_gib, start,
                                      args.bisections)
        # The settings are ordered by memory efficiency: the next search starts where this one
        # ended (a power of two or a bisection point; doubling from there is still doubling).
        start = max(start, found[mode][0])
    rates = {m: (float("nan"), float("nan"), -1) for m in args.modes}
    for mode in args.rate_modes:
        # A throughput trial may pass the budget (the whole layer at 1M classes does).  It runs
        # with every worker when the machine has room for them, else with one worker (for the
        # whole layer: the same memory and work per worker, without the gradient allreduce).
        need = _estimate_gib(mode, args.rate_classes, found[mode])
        room = _mem_available_gib()
        workers = args.workers
        if need * workers * 1.2 > room:
            workers = 1 if mode in "aw" and need * 1.2 <= room else 0
        if not workers:
            print("   %s at %d classes skipped: needs about %.1f GiB per worker, %.1f GiB free"
                  % (mode, args.rate_classes, need, room), flush=True)
            rates[mode] = (float("nan"), need, 0)
            continue
        fits, peak, rate = run_trial(mode, args.rate_classes, workers, args.rate_steps,
                                     max(args.budget_gib, need * 1.5))
        rates[mode] = (rate, peak, workers)

    from benchmarks.common import print_table
    base = found.get("a", (0, 0))[0]
    rows = []
    for mode in args.modes:
        classes, peak = found[mode]
        rate, peak_rate, ran = rates[mode]
        if ran < 0:
            rate_text = peak_text = "-"
        elif ran == 0:
            rate_text, peak_text = "not run", "~%.1f (estimated)" % peak_rate
        else:
            rate_text = "%.1f%s" % (rate, "" if ran == args.workers else
                                    " (%d worker: no room for %d)" % (ran, args.workers))
            peak_text = "%.2f" % peak_rate
        rows.append([MODES[mode]["label"], args.workers, "{:,}".format(classes),
                     "%.2f" % peak if classes else "-",
                     "%.2fx" % (classes / base) if base else "-", rate_text, peak_text])
    print_table(
        "Largest class count within %.0f GiB RSS per process; images/s at %s classes "
        "(embedding %d, batch %d per worker, momentum, float32; precomputed features)"
        % (args.budget_gib, "{:,}".format(args.rate_classes), EMB, BATCH),
        ["setting", "workers", "largest classes", "peak RSS there (GiB)", "vs (a)",
         "images/s at %s" % "{:,}".format(args.rate_classes), "peak RSS at %s (GiB)"
         % "{:,}".format(args.rate_classes)], rows)
    return 0


def accuracy_effect(steps, classes=1000, dim=128, batch=256, ratio=0.1, seed=0):
    """Trains the same small Partial FC task with the FC momentum in float32, bfloat16 and
    float16 (same data, seeds and steps) and prints the final loss and held-out accuracy."""
    import numpy as np
    import tensorflow.compat.v1 as tf
    import images  # noqa: F401
    from benchmarks.common import print_table
    from images.largescale import embedding, fc_layer, fc_optimizer, losses, train_graph
    from images.largescale.collectives import Collectives
    from images.utils import precision
    from images.utils.distributed import Cluster

    rng = np.random.RandomState(seed)
    centres = rng.randn(classes, dim).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def sample(n, r):
        y = r.randint(0, classes, n)
        return (4.0 * centres[y] + r.randn(n, dim).astype(np.float32)), y

    test_x, test_y = sample(5000, np.random.RandomState(seed + 1))
    rows = []
    for dtype in ("float32", "bfloat16", "float16"):
        data_rng = np.random.RandomState(seed + 2)
        with tf.Graph().as_default():
            tf.set_random_seed(seed)
            step = tf.train.get_or_create_global_step()
            x = tf.placeholder(tf.float32, [None, dim])
            y = tf.placeholder(tf.int64, [None])
            emb = embedding.build_embedding(x, backbone=lambda t, is_training: t, emb_size=dim,
                                            is_training=True, weight_decay=5e-4)
            spec = losses.get_loss("dist_softmax")
            fc = fc_layer.build_fc_loss(emb, y, num_classes=classes, loss_spec=spec,
                                        comm=Collectives(Cluster()), sample_ratio=ratio,
                                        weight_decay=5e-4, seed=seed, calc_acc=False)
            inner = tf.train.MomentumOptimizer(0.1, 0.9)
            if dtype != "float32":
                inner = fc_optimizer.LowPrecisionMomentum(
                    inner, [fc.weights, fc.bias], fc_optimizer.SLOT_DTYPES[dtype])
            opt = precision.GradientPolicyOptimizer(inner)
            reg = tf.add_n(tf.losses.get_regularization_losses())
            train_op = train_graph.build_train_op(opt, fc.loss + fc.reg_loss, reg, [],
                                                  Collectives(Cluster()), True, step)
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                history = []
                for _ in range(steps):
                    bx, by = sample(batch, data_rng)
                    history.append(sess.run([train_op, fc.loss], {x: bx, y: by})[1])
                e, w, b = sess.run([emb, fc.weights, fc.bias], {x: test_x})
        acc = float(np.mean(np.argmax(e @ w.T + b, axis=1) == test_y))
        if dtype == "float32":
            reference = w
        drift = float(np.max(np.abs(w - reference)) / np.max(np.abs(reference)))
        rows.append([dtype, "%.5f" % float(np.mean(history[-50:])), "%.4f" % acc,
                     "%.2e" % drift])
        print("   momentum %s: final loss %s, held-out top-1 %s, weights vs float32 %s"
              % tuple(rows[-1]), flush=True)
    print_table("FC momentum precision, Partial FC %.1f, %d classes, %d steps of %d (dist_softmax,"
                " momentum 0.9, lr 0.1)" % (ratio, classes, steps, batch),
                ["FC momentum", "training loss (last 50 steps)", "held-out top-1 (all classes)",
                 "max weight difference to float32 (relative)"],
                rows)
    return 0


def _estimate_gib(mode, classes, found):
    """Peak RSS at ``classes`` extrapolated linearly from the largest fitting trial."""
    fitted, peak = found
    if not fitted:
        return float("inf")
    base = 0.6  # GiB of TensorFlow + Horovod before any layer
    return base + (peak - base) * classes / fitted


if __name__ == "__main__":
    sys.exit(main())
