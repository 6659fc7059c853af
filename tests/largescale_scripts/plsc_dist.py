"""PLSC programs under ``horovodrun -np 2`` (tests/test_plsc_dist.py).

    python plsc_dist.py WORK B64_DIR LABEL_DIR

1. PLSC v0.2's style on base64 files shuffled the PLSC way (one file per trainer): ``arcface``
   with ``set_model_parallel(True)``, Partial FC, a bfloat16 FC momentum, training on
   ``plsc.utils.base64_reader.train`` as ``ins.train_reader`` (each trainer reads its own file).
2. PLSC's default reader (label.txt and images) with mixed precision at PLSC's defaults,
   starting from phase 1's epoch-1 checkpoint (``<save dir>/1``), then ``test()``.

Each rank writes ``WORK/info-<rank>.json``.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import plsc.config  # noqa: E402
from plsc import Entry  # noqa: E402
from plsc.utils import base64_reader  # noqa: E402

plsc.config.config.update(model_name="lenet", image_shape=(3, 28, 28), emb_dim=16,
                          train_batch_size=4, test_batch_size=16, num_classes=13,
                          with_test=False, val_targets="tiny")


def main(work, b64_dir, label_dir):
    info = {}
    ins = Entry()
    ins.set_dataset_dir(b64_dir)
    ins.set_loss_type("arcface")
    ins.set_model_parallel(True)
    ins.set_sample_ratio(0.6)
    ins.set_fc_momentum_dtype("bfloat16")
    ins.set_calc_acc(True)
    ins.set_log_period(4)
    ins.set_train_epochs(2)
    ins.set_model_save_dir(os.path.join(work, "A"))
    ins.train_reader = base64_reader.train(b64_dir, ins.num_classes)
    with ins.trainer() as t:
        info["A"] = {"loss_type": t.loss_type, "data_format": t.data_format,
                     "steps_per_epoch": t.steps_per_epoch, "total_steps": t.total_steps,
                     "shard": [t.fc.start, t.fc.num_local],
                     "slot": t.optimizer.get_slot(t.fc.weights, "momentum").dtype.name,
                     "step": int(t.fit())}
    info["trainer"] = [ins.trainer_id, ins.num_trainers, os.environ["PADDLE_TRAINER_ID"],
                       os.environ["PADDLE_TRAINERS_NUM"]]

    ins = Entry()
    ins.set_dataset_dir(label_dir)
    ins.set_checkpoint_dir(os.path.join(work, "A", "1"))
    ins.set_model_save_dir(os.path.join(work, "B"))
    ins.set_train_epochs(3)
    ins.set_mixed_precision(True, dtype="bfloat16")
    info["B"] = ins.train()
    info["test"] = ins.test()
    with open(os.path.join(work, "info-%d.json" % ins.trainer_id), "w") as f:
        json.dump(info, f, default=str)


if __name__ == "__main__":
    main(*sys.argv[1:4])
