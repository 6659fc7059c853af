"""Training throughput of model-zoo networks: images/s and model-FLOPs utilisation.

    python benchmarks/train_throughput.py --suite=zoo [--quick]

Each network runs the trainer's training step (softmax cross-entropy, weight decay, momentum,
batch-norm updates) on a fixed synthetic batch in float32.  Utilisation = training FLOPs per image
(TF's profiler on the whole training graph: forward, backward and update) x images/s / the float32
peak of a large matmul measured in the same process, before and after the networks (their mean).
The forward multiply-adds column is the registry's figure (``ModelRecord.flops``) at the size run.
"""
import numpy as np

from benchmarks import common

# (network, batch, image size): the default sizes, batches that keep a step near a second here.
NETWORKS = (
    ("lenet", 64, 28),
    ("cifarnet", 64, 32),
    ("mobilenet_v1", 16, 224),
    ("resnet_v1_50", 16, 224),
    ("inception_v3", 8, 299),
)


def run(args):
    steps, warmup = (3, 1) if args.quick else (9, 2)
    peak_before = common.matmul_peak_flops()
    rows = []
    for name, batch, size in NETWORKS:
        from images.models import model_factory
        record = model_factory.get_model_record(name)
        rate, train_flops = common.zoo_training_rate(name, batch, size, steps=steps,
                                                     warmup=warmup,
                                                     num_classes=record.default_num_classes)
        rows.append([name, "%dx%d" % (size, size), batch, rate, record.flops / 1e9,
                     train_flops / 1e9, train_flops / (2 * record.flops), rate * train_flops])
    peak = (peak_before + common.matmul_peak_flops()) / 2
    table = [row[:-1] + [row[-1] / 1e9, 100.0 * row[-1] / peak] for row in rows]
    common.print_table(
        "Model zoo training throughput (float32, synthetic batch, matmul peak %.0f GFLOP/s)"
        % (peak / 1e9),
        ["network", "image", "batch", "images/s", "forward GMAC/image",
         "training GFLOP/image", "training / forward FLOPs", "GFLOP/s", "utilisation %"],
        table)
    return {"peak": peak, "rows": table, "median_utilisation": float(np.median(
        [r[-1] for r in table]))}
