"""The large-scale Entry across hosts: the program test_cluster_largescale.py runs under horovodrun.

    python entry_job.py four OUT   4 workers: dist_softmax with Partial FC (sample ratio 0.5) over
                                   10 classes, 4 steps, checkpoints in OUT/four
    python entry_job.py two OUT    2 workers: load OUT/four (re-sharded from 4 to 2), save it
                                   untouched in OUT/two, then train on to step 6 from there

Each rank writes ``vars-<phase>-<rank>.npz`` (every variable) and ``info-<phase>-<rank>.json``
(its host, its class shard, the shard variables' names) into OUT.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from images.largescale import Entry  # noqa: E402

CLASSES = 10
FIRST_STEPS = 4
MORE_STEPS = 2


def entry(steps, save_dir):
    ins = Entry()
    ins.set_model("lenet")
    ins.set_image_shape((3, 28, 28))
    ins.set_emb_size(16)
    ins.set_class_num(CLASSES)
    ins.set_loss_type("dist_softmax")
    ins.set_sample_ratio(0.5)
    ins.set_train_batch_size(8)
    ins.set_train_steps(steps)
    ins.set_log_period(1)
    ins.set_lr(0.1)
    ins.set_random_seed(7)
    ins.set_model_save_dir(save_dir)
    return ins


def train(ins, out, phase):
    """Trains ``ins`` and records what this rank holds afterwards."""
    with ins.trainer() as t:
        step = t.fit()
        values = t.variable_values()
        info = {"rank": ins.cluster.rank, "size": ins.cluster.size,
                "host": os.environ.get("HOROVOD_HOSTNAME"), "step": int(step),
                "start": t.fc.start, "num_local": t.fc.num_local,
                "shard_arrays": sorted(v.op.name for v in t.shard_arrays.values())}
    np.savez(os.path.join(out, "vars-%s-%d.npz" % (phase, info["rank"])), **values)
    with open(os.path.join(out, "info-%s-%d.json" % (phase, info["rank"])), "w") as f:
        json.dump(info, f)


def main(phase, out):
    if phase == "four":
        train(entry(FIRST_STEPS, os.path.join(out, "four")), out, "four")
    elif phase == "two":
        loaded = entry(FIRST_STEPS, os.path.join(out, "two"))
        loaded.set_checkpoint_dir(os.path.join(out, "four"))  # written by 4 workers
        train(loaded, out, "loaded")
        # Resumes from OUT/two, now a 2-shard checkpoint.
        train(entry(FIRST_STEPS + MORE_STEPS, os.path.join(out, "two")), out, "two")
    else:
        raise SystemExit("unknown phase %r (four, two)" % phase)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
