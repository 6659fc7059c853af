"""Programs the large-scale tests run, alone or under horovodrun; each phase writes what it saw.

    python train_entry.py train WORK DATA      trains through the Entry API (dist_arcface on base64
                                               data with verification; a mock-data run with
                                               Partial FC; a whole-layer data-parallel run)
    python train_entry.py reshard SRC DST      loads SRC with this worker count, saves to DST
    python train_entry.py layer_and_reshard OUT SRC DST
                                               check_layer.py's checks, then reshard

Files in WORK (per rank r): ``vars-<run>-<r>.npz`` (every variable after training) and
``info-<r>.json``.
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)

import images  # noqa: E402,F401
from images.largescale import Entry, checkpoint  # noqa: E402


def small(ins, classes, loss, save_dir, steps):
    ins.set_model("lenet")
    ins.set_image_shape((3, 28, 28))
    ins.set_emb_size(16)
    ins.set_class_num(classes)
    ins.set_loss_type(loss)
    ins.set_train_batch_size(8)
    ins.set_train_steps(steps)
    ins.set_log_period(1)
    ins.set_model_save_dir(save_dir)
    ins.set_lr(0.5)
    return ins


def train(work, data_dir):
    info = {}
    # 1. dist_arcface on base64 data (13 classes over 2 workers: 7 + 6), verification while
    #    training, then test / export / predict.
    ins = small(Entry(), 13, "dist_arcface", os.path.join(work, "A"), 4)
    ins.set_dataset_dir(data_dir)
    ins.set_save_steps(2)
    ins.set_calc_acc(True)
    ins.set_with_test(True)
    ins.set_val_targets("tiny")
    with ins.trainer() as t:
        t.fit()
        values = t.variable_values()
        info["A"] = {"start": t.fc.start, "num_local": t.fc.num_local,
                     "shard_arrays": sorted(v.op.name for v in t.shard_arrays.values()),
                     "total_steps": t.total_steps, "data_format": t.data_format,
                     "test_during_training": {str(k): v for k, v in t.results.items()}}
    rank = ins.cluster.rank
    np.savez(os.path.join(work, "vars-A-%d.npz" % rank), **values)
    info["test"] = ins.test()
    info["export"] = ins.convert_for_prediction()
    if rank == 0:
        with open(os.path.join(data_dir, "part-00000-of-00002.txt")) as f:
            import base64
            encoded = [base64.b64decode(f.readline().split("\t")[0]) for _ in range(3)]
        emb = ins.predict(encoded)
        info["predict"] = {"shape": list(emb.shape), "rows": emb.tolist()}

    # 2. The short program on mock data: Partial FC over 101 classes (51 + 50), bfloat16 with
    #    dynamic loss scaling (a non-finite shard gradient must skip the step on every worker).
    ins = Entry()
    ins.set_class_num(101)
    small(ins, 101, "dist_softmax", os.path.join(work, "M"), 3)
    ins.set_sample_ratio(0.5)
    ins.set_mixed_precision(True, init_loss_scaling=64.0, dtype="bfloat16")
    info["M"] = ins.train()

    # 3. Whole-layer data parallel: every variable, the FC layer included, the same everywhere.
    ins = small(Entry(), 13, "arcface", os.path.join(work, "W"), 3)
    with ins.trainer() as t:
        t.fit()
        values = t.variable_values()
    np.savez(os.path.join(work, "vars-W-%d.npz" % rank), **values)

    with open(os.path.join(work, "info-%d.json" % rank), "w") as f:
        json.dump(info, f, indent=1, default=str)


def reshard(src, dst):
    """Loads ``src`` with this job's worker count and saves it, untrained, to ``dst``."""
    meta = checkpoint.read_meta(checkpoint.resolve_checkpoint(src))
    ins = small(Entry(), meta["num_classes"], meta["loss_type"], dst, meta["step"])
    ins.set_checkpoint_dir(src)
    return ins.train()


if __name__ == "__main__":
    phase = sys.argv[1]
    if phase == "train":
        train(sys.argv[2], sys.argv[3])
    elif phase == "reshard":
        reshard(sys.argv[2], sys.argv[3])
    elif phase == "layer_and_reshard":
        import check_layer
        check_layer.main(sys.argv[2])
        reshard(sys.argv[3], sys.argv[4])
    else:
        raise SystemExit("unknown phase %r" % phase)
