"""oneDNN off against on: resnet_v1_50 float32 training images/s and utilisation of the matmul peak.

    python benchmarks/train_throughput.py --suite=onednn [--quick]

TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` once, at import, so each setting runs in its own
process; the two take turns (A B A B) and each cell is the median over rounds, so load from other
work hits both alike.  Each process times, in the same run, a large float32 matmul (its practical
FLOP/s peak, with that setting's kernels) and the trainer's training step on a fixed synthetic
batch (softmax cross-entropy, weight decay, momentum, batch-norm updates); the training FLOPs per
image come from TensorFlow's profiler on the whole training graph.  Utilisation is the achieved
FLOP rate over the peak: over the process's own peak, and over the best peak of either setting
(the machine's).  The same figures per CPU-second (CPU time of every thread of the process) are
less disturbed by other work on a shared machine than wall-clock rates.  The entry points choose
the setting by :mod:`images.utils.onednn`.
"""
import json
import os
import subprocess
import sys

import numpy as np

from benchmarks import common

MODES = (("oneDNN off", "0"), ("oneDNN on", "1"))


def _worker(image_size, batch_size, steps, warmup):
    """One measurement in this process; prints JSON with images/s, FLOPs/image and the peak."""
    from images.utils import precision
    cpu_peaks, cpu_step = [], []
    peak = common.matmul_peak_flops(cpu_out=cpu_peaks)
    rate, flops = common.zoo_training_rate("resnet_v1_50", batch_size, image_size, steps=steps,
                                           warmup=warmup, cpu_out=cpu_step)
    peak = max(peak, common.matmul_peak_flops(cpu_out=cpu_peaks))  # the better, before or after
    print(json.dumps({"images_per_sec": rate, "flops_per_image": flops, "peak": peak,
                      "images_per_cpu_sec": batch_size / cpu_step[0],
                      "peak_per_cpu_sec": max(cpu_peaks),
                      "onednn": precision.onednn_enabled()}), flush=True)


def _measure(onednn, image_size, batch_size, steps, warmup):
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=common.ROOT)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.suite_onednn", str(image_size),
                           str(batch_size), str(steps), str(warmup)],
                          cwd=common.ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError("TF_ENABLE_ONEDNN_OPTS=%s failed:\n%s" % (onednn, proc.stderr[-3000:]))
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["onednn"] != (onednn == "1"):
        raise RuntimeError("TF_ENABLE_ONEDNN_OPTS=%s did not take effect" % onednn)
    return result


def run(args):
    from images.utils import onednn
    size, batch = 224, 16
    steps, warmup, rounds = (3, 1, 1) if args.quick else (6, 2, 2)
    results = {label: [] for label, _ in MODES}
    for _ in range(rounds):
        for label, value in MODES:
            results[label].append(_measure(value, size, batch, steps, warmup))
    best_peak = max(r["peak"] for rs in results.values() for r in rs)
    base = float(np.median([r["images_per_sec"] for r in results["oneDNN off"]]))
    best_cpu_peak = max(r["peak_per_cpu_sec"] for rs in results.values() for r in rs)
    cpu_base = float(np.median([r["images_per_cpu_sec"] for r in results["oneDNN off"]]))
    rows = []
    for label, _ in MODES:
        def median(key):
            return float(np.median([r[key] for r in results[label]]))
        rate, flops, peak = median("images_per_sec"), median("flops_per_image"), median("peak")
        cpu_rate = median("images_per_cpu_sec")
        rows.append(["%dx%d" % (size, size), batch, label, rate, rate / base, flops / 1e9,
                     rate * flops / 1e9, peak / 1e9, 100 * rate * flops / peak,
                     100 * rate * flops / best_peak, cpu_rate, cpu_rate / cpu_base,
                     100 * cpu_rate * flops / best_cpu_peak])
    flags = onednn.cpu_flags()
    cpu = ", ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16",
                                "amx_bf16") if f in flags) or "unknown"
    common.print_table(
        "resnet_v1_50 float32 training, oneDNN off vs on (CPU flags: %s; median of %d round(s) "
        "of %d steps)" % (cpu, rounds, steps),
        ["image", "batch", "setting", "images/s", "vs off", "training GFLOP/image", "GFLOP/s",
         "matmul peak GFLOP/s (same setting)", "utilisation % (own peak)",
         "utilisation % (best peak)", "images per CPU-second", "vs off (CPU time)",
         "utilisation % per CPU-second (best peak)"], rows)
    return {"rows": rows, "best_peak": best_peak, "best_cpu_peak": best_cpu_peak}


if __name__ == "__main__":
    _worker(*(int(a) for a in sys.argv[1:5]))
