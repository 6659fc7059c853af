"""Large-scale classification under ``horovodrun -np 2``.

Two horovodrun jobs and one single-process run, shared by all tests of this module (start-up
dominates their cost):

1. ``train_entry.py train``: Entry API training with dist_arcface on base64 data shuffled by the
   tool (13 classes: shards of 7 and 6) with verification while training, ``test()``, export and
   ``predict()``; a mock-data run with Partial FC and bfloat16 dynamic loss scaling (101
   classes); a whole-layer data-parallel run.
2. single process: load the 2-worker checkpoint with 1 worker and save it (2 -> 1).
3. ``train_entry.py layer_and_reshard``: the layer checks against the numpy float64 reference
   (check_layer.py), then load the 1-worker checkpoint with 2 workers and save it (1 -> 2).
"""
import json
import os
import sys

import numpy as np
import pytest

from conftest import horovodrun, run_script

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "largescale_scripts"))
import datagen  # noqa: E402

pytestmark = pytest.mark.horovod
SCRIPT = os.path.join("tests", "largescale_scripts", "train_entry.py")
TOL = 1e-5


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("largescale")
    raw, work = str(root / "raw"), str(root / "work")
    os.makedirs(work)
    datagen.write_base64_dataset(raw, 90, 13, num_files=3)
    data_dir = os.path.join(raw, "shuffled_2")
    tool = run_script(["tools/process_base64_files.py", "--data_dir", raw, "--nranks", "2"])
    datagen.write_pair_set(os.path.join(data_dir, "tiny.bin"))
    train = horovodrun([SCRIPT, "train", work, data_dir], timeout=900)
    to_one = run_script([SCRIPT, "reshard", os.path.join(work, "A"), os.path.join(work, "B")])
    layer = horovodrun([SCRIPT, "layer_and_reshard", os.path.join(work, "layer"),
                        os.path.join(work, "B"), os.path.join(work, "C")], timeout=900)
    info = [json.load(open(os.path.join(work, "info-%d.json" % r))) for r in range(2)]
    checks = [json.load(open(os.path.join(work, "layer", "layer-%d.json" % r)))["checks"]
              for r in range(2)]
    return dict(work=work, data_dir=data_dir, tool=tool, train=train, to_one=to_one,
                layer=layer, info=info, checks=checks)


CASES = ["dist_softmax", "dist_arcface", "dist_cosface", "dist_combined", "dist_sphereface",
         "dist_arcface_easy", "softmax", "arcface", "dist_arcface_wd"]


@pytest.mark.parametrize("case", CASES)
def test_loss_and_gradients_match_whole_layer_reference(runs, case):
    for rank, checks in enumerate(runs["checks"]):
        c = checks[case]
        for key in ("loss", "dx", "dw", "db"):
            if key in c:
                assert c[key] < TOL, "rank %d %s: %s relative error %g" % (rank, case, key,
                                                                            c[key])
        assert c["accuracy"] < 1e-6
    if case.startswith("dist_"):
        # 13 classes over 2 workers: balanced shards of 7 and 6; the shard stays local.
        assert [(c[case]["start"], c[case]["num_local"]) for c in runs["checks"]] == [(0, 7),
                                                                                       (7, 6)]
        assert runs["checks"][0][case]["shard_variables"] >= 1
    else:
        assert runs["checks"][0][case]["shard_variables"] == 0


def test_partial_fc_ratio_one_equals_whole_layer(runs):
    for checks in runs["checks"]:
        for name in ("dist_arcface", "dist_softmax"):
            assert checks["pfc1_" + name]["max_rel"] < TOL


def test_partial_fc_updates_only_sampled_rows_and_keeps_positives(runs):
    for checks in runs["checks"]:
        c = checks["pfc_sampled"]
        sampled = set(c["sampled"])
        assert set(c["positives"]) <= sampled
        assert len(sampled) == c["expected_count"] < c["num_local"]
        assert set(c["changed_rows"]) == sampled
        assert set(c["slot_rows"]) == sampled
    assert any(set(c["pfc_sampled"]["sampled"]) - set(c["pfc_sampled"]["positives"])
               for c in runs["checks"])  # random negatives too, not only positives


def test_after_training_shards_differ_and_everything_else_is_identical(runs):
    a = [np.load(os.path.join(runs["work"], "vars-A-%d.npz" % r)) for r in range(2)]
    shard_names = set(runs["info"][0]["A"]["shard_arrays"])
    assert shard_names == {"dist_fc/weights", "dist_fc/weights/Momentum"}
    assert set(a[0].files) == set(a[1].files)
    for name in a[0].files:
        x, y = a[0][name], a[1][name]
        if name in shard_names:
            assert x.shape[0] == 7 and y.shape[0] == 6
            # Neither averaged nor broadcast: rows and momentum differ between the workers.
            assert not np.allclose(x[:6], y)
            assert np.any(x != 0)
        else:
            assert x.tobytes() == y.tobytes(), name
    w = [np.load(os.path.join(runs["work"], "vars-W-%d.npz" % r)) for r in range(2)]
    for name in w[0].files:  # whole layer: data parallel, the FC layer included
        assert w[0][name].tobytes() == w[1][name].tobytes(), name
    assert w[0]["dist_fc/weights"].shape == (13, 16)


def test_resharding_two_one_two_is_bit_exact(runs):
    work = runs["work"]
    assert "re-sharded" in runs["to_one"].stderr and "from 2 to 1" in runs["to_one"].stderr
    assert "from 1 to 2" in runs["layer"].stderr
    a = [np.load(os.path.join(work, "A", "ckpt-4", "shard-%05d-of-00002.npz" % r))
         for r in range(2)]
    b = np.load(os.path.join(work, "B", "ckpt-4", "shard-00000-of-00001.npz"))
    c = [np.load(os.path.join(work, "C", "ckpt-4", "shard-%05d-of-00002.npz" % r))
         for r in range(2)]
    assert set(a[0].files) == {"weights", "weights/momentum"}
    for key in a[0].files:
        assert np.concatenate([a[0][key], a[1][key]]).tobytes() == b[key].tobytes()
        for x, y in zip(a, c):
            assert x[key].tobytes() == y[key].tobytes()
    with open(os.path.join(work, "A", "ckpt-4", "shared.data-00000-of-00001"), "rb") as f1, \
            open(os.path.join(work, "C", "ckpt-4", "shared.data-00000-of-00001"), "rb") as f2:
        assert f1.read() == f2.read()


def test_checkpoint_meta_files(runs):
    folder = os.path.join(runs["work"], "A", "ckpt-4")
    meta = json.load(open(os.path.join(folder, "meta.json")))
    assert (meta["num_workers"], meta["num_shards"], meta["num_classes"], meta["emb_size"]) == (
        2, 2, 13, 16)
    for r, (start, n) in enumerate([(0, 7), (7, 6)]):
        shard = json.load(open(os.path.join(folder, "shard-%05d-of-00002.json" % r)))
        assert (shard["rank"], shard["start"], shard["num_local"], shard["num_classes"],
                shard["emb_size"], shard["num_workers"]) == (r, start, n, 13, 16, 2)
    pointer = json.load(open(os.path.join(runs["work"], "A", "checkpoint.json")))
    assert pointer["latest"] == "ckpt-4" and pointer["all"] == ["ckpt-2", "ckpt-4"]
    assert not [n for n in os.listdir(os.path.join(runs["work"], "A")) if ".tmp" in n]
    whole = json.load(open(os.path.join(runs["work"], "W", "ckpt-3", "meta.json")))
    assert (whole["num_workers"], whole["num_shards"]) == (2, 1)


def test_mock_data_is_announced_and_partial_fc_entry_trains(runs):
    err = runs["train"].stderr
    assert "MOCK data" in err and "Partial FC 0.5" in err
    assert "base64 data from" in err
    assert runs["info"][0]["M"]["step"] == 3
    meta = json.load(open(os.path.join(runs["work"], "M", "ckpt-3", "meta.json")))
    assert meta["num_classes"] == 101 and meta["num_shards"] == 2
    assert "padding" in runs["tool"].stdout


def test_verification_in_training_and_test(runs):
    info0, info1 = runs["info"]
    during = info0["A"]["test_during_training"]
    assert set(during) == {"2", "4"}
    for res in list(during.values()) + [info0["test"]]:
        r = res["tiny"]
        assert r["pairs"] == 20 and 0.0 <= r["accuracy"] <= 1.0
    assert info1["test"] is None  # rank 0 evaluates


def test_exported_saved_model_serves_embeddings(runs):
    import base64
    import tensorflow.compat.v1 as tf
    info0 = runs["info"][0]
    export_dir = info0["export"]
    assert os.path.basename(export_dir) == "1"
    assert os.path.exists(os.path.join(export_dir, "saved_model.pb"))
    with open(os.path.join(runs["data_dir"], "part-00000-of-00002.txt")) as f:
        encoded = [base64.b64decode(f.readline().split("\t")[0]) for _ in range(3)]
    with tf.Graph().as_default(), tf.Session() as sess:
        meta = tf.saved_model.loader.load(sess, [tf.saved_model.SERVING], export_dir)
        sig = meta.signature_def["serving_default"]
        assert set(sig.inputs) == {"image_bytes"}
        assert sig.inputs["image_bytes"].dtype == tf.string.as_datatype_enum
        assert sig.outputs["embeddings"].tensor_shape.dim[1].size == 16
        out = sess.run(sig.outputs["embeddings"].name,
                       {sig.inputs["image_bytes"].name: encoded})
        raw = sess.run(sig.outputs["raw_embeddings"].name,
                       {sig.inputs["image_bytes"].name: encoded})
        float_sig = meta.signature_def["predict_images"]
        assert float_sig.inputs["images"].tensor_shape.dim[1].size == 28
    assert out.shape == (3, 16)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.allclose(out, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)
    predicted = np.array(info0["predict"]["rows"])  # Entry.predict: normalised too
    assert np.allclose(out, predicted, atol=1e-4)

