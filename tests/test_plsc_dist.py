"""PLSC programs under ``horovodrun -np 2`` (issue 15): see largescale_scripts/plsc_dist.py."""
import json
import os
import sys

import pytest

from conftest import horovodrun, run_script

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "largescale_scripts"))
import datagen  # noqa: E402

pytestmark = pytest.mark.horovod


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("plsc_dist")
    b64, labels, work = str(root / "b64"), str(root / "labels"), str(root / "work")
    os.makedirs(work)
    datagen.write_base64_dataset(b64, 62, 13, num_files=3)
    tool = run_script(["tools/process_base64_files.py", "--data_dir", b64, "--file_list",
                       "file_list.txt", "--nranks", "2", "--in_place"])
    datagen.write_label_dataset(labels, 62, 13)
    datagen.write_pair_set(os.path.join(labels, "tiny.bin"))
    proc = horovodrun([os.path.join("tests", "largescale_scripts", "plsc_dist.py"), work, b64,
                       labels], timeout=900)
    info = [json.load(open(os.path.join(work, "info-%d.json" % r))) for r in range(2)]
    return dict(tool=tool, proc=proc, info=info, work=work)


def test_model_parallel_partial_fc_on_plscs_base64_files(run):
    a = [i["A"] for i in run["info"]]
    # 13 classes over 2 trainers; each reads its own file of 31 lines in batches of 4.
    assert [x["shard"] for x in a] == [[0, 7], [7, 6]]
    for x in a:
        assert (x["loss_type"], x["data_format"], x["slot"]) == ("dist_arcface", "reader",
                                                                 "bfloat16")
        assert (x["steps_per_epoch"], x["total_steps"], x["step"]) == (8, 16, 16)
    assert [i["trainer"] for i in run["info"]] == [[0, 2, "0", "2"], [1, 2, "1", "2"]]
    assert "accuracy5=" in run["proc"].stderr


def test_label_txt_mixed_precision_from_an_epoch_checkpoint_then_test(run):
    for info in run["info"]:
        assert info["B"]["step"] == 24  # epoch 1's checkpoint is step 16; three epochs of 8
    test0, test1 = run["info"][0]["test"], run["info"][1]["test"]
    assert test1 is None
    assert test0["tiny"]["step"] == 24 and test0["tiny"]["pairs"] == 20
    assert "re-sharded" not in run["proc"].stderr
    meta = json.load(open(os.path.join(run["work"], "B", "ckpt-24", "meta.json")))
    assert (meta["num_shards"], meta["loss_type"], meta["steps_per_epoch"]) == (
        2, "dist_arcface", 8)
