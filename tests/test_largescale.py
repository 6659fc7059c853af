"""Large-scale classification, single process: shards, re-sharding, verification protocol, data
readers, the shuffle tool, Entry's setters, mixed precision.  (Horovod runs:
test_largescale_dist.py.)"""
import base64
import hashlib
import os
import sys

import numpy as np
import pytest

from conftest import run_script

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "largescale_scripts"))
import datagen  # noqa: E402

from images.largescale import Entry, checkpoint, losses, sharding, verification  # noqa: E402


def _load_tool():
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools",
                        "process_base64_files.py")
    spec = importlib.util.spec_from_file_location("process_base64_files", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------- shards
@pytest.mark.parametrize("classes,shards", [(12, 5), (13, 2), (10, 10), (1000003, 8), (7, 3)])
def test_shards_are_balanced_and_cover_every_class(classes, shards):
    ranges = sharding.shard_ranges(classes, shards)
    sizes = [n for _, n in ranges]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert sum(sizes) == classes
    assert all(s == ranges[i - 1][0] + ranges[i - 1][1] for i, (s, _) in enumerate(ranges) if i)
    labels = np.arange(classes)
    owners = sharding.owner_of(labels, classes, shards)
    starts = np.array([s for s, _ in ranges])
    assert np.all(starts[owners] <= labels)
    assert np.all(labels < starts[owners] + np.array(sizes)[owners])


def test_ceil_split_case_from_the_reference():
    # PLSC's ceil-based split gives C=12, N=5 shards of 3,3,3,3,0; ours 3,3,2,2,2.
    assert [n for _, n in sharding.shard_ranges(12, 5)] == [3, 3, 2, 2, 2]


def test_too_few_classes_is_a_clear_error():
    with pytest.raises(ValueError, match="smaller than the worker count"):
        sharding.shard_range(3, 4, 0)


def test_reshard_round_trips_bit_exactly():
    rng = np.random.RandomState(0)
    full = rng.randn(101, 7).astype(np.float32)
    for n, n2 in ((4, 3), (1, 8), (8, 1), (5, 7)):
        shards = sharding.reshard([full], n)
        back = sharding.reshard(sharding.reshard(shards, n2), n)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(shards, back))
        pieces = sharding.overlapping_shards(101, n, *sharding.shard_range(101, n2, n2 - 1))
        assert sum(hi - lo for _, lo, hi, _ in pieces) == sharding.shard_range(101, n2,
                                                                                n2 - 1)[1]


# ---------------------------------------------------------------- losses and setters
def test_loss_registry_and_margin_checks():
    assert {"softmax", "arcface", "dist_softmax", "dist_arcface", "dist_cosface"} <= set(
        losses.list_losses())
    assert losses.get_loss("dist_cosface").margins == (1.0, 0.0, 0.35)
    with pytest.raises(ValueError, match="valid: .*dist_arcface"):
        losses.get_loss("dist_arc")
    with pytest.raises(ValueError, match="m2"):
        losses.Margin(1.0, 4.0, 0.0).validate()


def test_entry_setters_reject_bad_values():
    ins = Entry()
    with pytest.raises(ValueError, match="valid"):
        ins.set_loss_type("arc")
    with pytest.raises(ValueError, match="sample_ratio"):
        ins.set_sample_ratio(0.0)
    with pytest.raises(ValueError, match="unknown model_name"):
        ins.set_model("no_such_net")
    with pytest.raises(ValueError, match="channels"):
        ins.set_image_shape((4, 112, 112))
    with pytest.raises(ValueError, match="incr_ratio must be > 1"):
        ins.set_mixed_precision(True, incr_ratio=0.5)
    with pytest.raises(ValueError, match="amp_lists"):
        ins.set_mixed_precision(True, amp_lists=object())
    with pytest.raises(ValueError, match="unknown optimizer setting"):
        ins.set_optimizer("momentum", beta=0.9)
    ins.set_loss_type("dist_softmax")
    with pytest.raises(ValueError, match="no margin"):
        ins.set_margins(1.0, 0.5, 0.0)
    ins.set_loss_type("dist_cosface")
    ins.set_margin(0.4)
    assert ins.config.margins == (1.0, 0.0, 0.4)
    with pytest.raises(ValueError, match="takes no margins"):
        ins.set_loss_type("softmax", margin1=1.0)
    ins.set_loss_type("softmax")  # PLSC: set_loss_type resets the margins
    assert ins.config.margins is None
    with pytest.raises(ValueError, match="does not exist"):
        ins.set_dataset_dir("/nonexistent/dir")


def test_missing_checkpoint_dir_raises_instead_of_waiting(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint.resolve_checkpoint(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpoint.resolve_checkpoint(str(tmp_path))


# ---------------------------------------------------------------- verification
def test_verification_metric_known_answer():
    # 600 pairs, 60 per fold; same pairs at distance 0.2, different pairs at 1.8, and in every
    # fold one different pair at distance 0 (an impostor no threshold can reject): every fold
    # scores 59/60.
    n = 600
    issame = np.arange(n) % 2 == 0
    dist = np.where(issame, 0.2, 1.8)
    dist[np.arange(1, n, 60)] = 0.0
    res = verification.evaluate_distances(dist, issame)
    assert res["accuracy"] == pytest.approx(59 / 60, abs=1e-12)
    assert res["accuracy_std"] == pytest.approx(0.0, abs=1e-12)
    assert 0.2 < res["threshold"] <= 1.8
    # FAR 1e-3 lies between 0 (threshold 0) and 9/270 (threshold 0.001, the impostors at 0
    # accepted): the interpolated threshold (3e-5) accepts this fold's impostor and no same
    # pair, so VAL = 0 and FAR = 1/30 in every fold.
    assert res["val"] == 0.0
    assert res["far"] == pytest.approx(1 / 30, abs=1e-12)


def test_verification_bin_with_flip_known_answer(tmp_path):
    # Images are a colour plus a left/right ramp.  The embedding [mean colour, left-minus-right]
    # of an image and its mirror differ, but the flip-summed embedding does not: pairs
    # (image, mirror image) are "same" at distance 0.  Different pairs have distinct colours;
    # in each fold one "different" pair uses the same colour (an unavoidable error).
    rng = np.random.RandomState(0)
    size, n = 8, 100
    ramp = np.linspace(-40, 40, size)[None, :, None]
    encoded, issame = [], []
    for i in range(n):
        c1 = rng.randint(60, 196, 3).astype(np.float64)
        img1 = np.clip(c1[None, None, :] + ramp, 0, 255).astype(np.uint8)
        if i % 2 == 0:
            img2 = img1[:, ::-1].copy()
            issame.append(True)
        else:
            c2 = c1 if i % 10 == 1 else (c1 + 60) % 256
            img2 = np.clip(c2[None, None, :] + ramp, 0, 255).astype(np.uint8)
            issame.append(False)
        encoded += [datagen.png_bytes(img1), datagen.png_bytes(img2)]
    path = str(tmp_path / "mirror.bin")
    verification.write_bin(path, encoded, issame)

    def embed(x):
        half = x.shape[2] // 2
        return np.concatenate([x.mean(axis=(1, 2)), x[:, :, :half].mean(axis=(1, 2, 3))[:, None]
                               - x[:, :, half:].mean(axis=(1, 2, 3))[:, None]], axis=1)

    res = verification.verify(path, embed, (3, size, size), batch_size=16)
    assert res["pairs"] == n
    assert res["accuracy"] == pytest.approx(0.9, abs=1e-12)  # one impostor in 10 pairs per fold
    # Without the flip the mirrored same pairs are far apart and the score drops.
    images = verification.decode_images(verification.load_bin(path)[0], (3, size, size))
    plain = embed((images.astype(np.float32) - 127.5) / 128.0)
    plain /= np.linalg.norm(plain, axis=1, keepdims=True)
    assert verification.evaluate_embeddings(plain, np.array(issame))["accuracy"] < 0.9


def test_bad_bin_file_is_named(tmp_path):
    path = tmp_path / "bad.bin"
    path.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="bad.bin"):
        verification.load_bin(str(path))


# ---------------------------------------------------------------- the shuffle tool
def _digest(folder):
    return {n: hashlib.sha256(open(os.path.join(folder, n), "rb").read()).hexdigest()
            for n in sorted(os.listdir(folder)) if os.path.isfile(os.path.join(folder, n))}


def test_process_base64_files(tmp_path):
    data = str(tmp_path / "data")
    datagen.write_base64_dataset(data, 31, 5, num_files=3, size=8)
    # A label with a leading zero is still an integer and is written canonically.
    with open(os.path.join(data, "data-0.txt"), "a") as f:
        f.write("%s\t007\n" % base64.b64encode(datagen.png_bytes(
            np.zeros((8, 8, 3), np.uint8))).decode())
    before = _digest(data)
    proc = run_script(["tools/process_base64_files.py", "--data_dir", data, "--nranks", "4",
                       "--seed", "3", "--output_dir", str(tmp_path / "out")])
    assert "32 lines" in proc.stdout and "0 padding" in proc.stdout
    assert _digest(data) == before  # inputs untouched, nothing deleted
    outs = [str(tmp_path / "out" / ("part-%05d-of-00004.txt" % r)) for r in range(4)]
    lines = [open(p).read().splitlines() for p in outs]
    assert [len(x) for x in lines] == [8, 8, 8, 8]
    inputs = sum((open(os.path.join(data, "data-%d.txt" % i)).read().splitlines()
                  for i in range(3)), [])
    canonical = [ln.replace("\t007", "\t7") for ln in inputs]
    flat = sum(lines, [])
    assert sorted(flat) == sorted(canonical)
    assert all(ln.split("\t")[1].isdigit() and len(ln.split("\t")) == 2 for ln in flat)
    # Global shuffle: every output mixes lines from several input files.
    origin = {ln: i % 3 for i, ln in enumerate(canonical)}
    assert all(len({origin[ln] for ln in part}) > 1 for part in lines)
    assert open(str(tmp_path / "out" / "file_list.txt")).read().split() == [
        os.path.basename(p) for p in outs]

    tool = _load_tool()
    # Seeded: the same seed gives the same files, another seed another order.
    again = tool.process(data, "file_list.txt", 4, str(tmp_path / "again"), seed=3,
                         log=lambda *_: None)
    assert [open(p).read() for p in again] == ["\n".join(x) + "\n" for x in lines]
    other = tool.process(data, "file_list.txt", 4, str(tmp_path / "other"), seed=4,
                         log=lambda *_: None)
    assert [open(p).read() for p in other] != [open(p).read() for p in again]
    # Padding: 32 lines over 5 workers -> 7 each, 3 repeated lines, reported.
    messages = []
    padded = tool.process(data, "file_list.txt", 5, str(tmp_path / "pad"), seed=0,
                          log=messages.append)
    assert [len(open(p).read().splitlines()) for p in padded] == [7] * 5
    assert any("3 padding" in m for m in messages)


def test_process_base64_files_rejects_bad_input(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("abcd\tseven\n")
    (data / "file_list.txt").write_text("a.txt\n")
    proc = run_script(["tools/process_base64_files.py", "--data_dir", str(data), "--nranks",
                       "2"], check=False)
    assert proc.returncode == 2 and "a.txt:1" in proc.stderr and "not an integer" in proc.stderr
    (data / "a.txt").write_text("abcd\t1\n")
    proc = run_script(["tools/process_base64_files.py", "--data_dir", str(data), "--nranks",
                       "2", "--output_dir", str(data)], check=False)
    # The new file_list.txt would replace the input list: refused, nothing written over.
    assert proc.returncode == 2 and "would overwrite an input" in proc.stderr
    assert (data / "a.txt").read_text() == "abcd\t1\n"
    assert (data / "file_list.txt").read_text() == "a.txt\n"


# ---------------------------------------------------------------- readers
def test_base64_and_tfrecord_readers_decode_images_and_integer_labels(tmp_path, graph):
    import tensorflow.compat.v1 as tf
    from images.datasets import example_codec
    from images.largescale import data

    rng = np.random.RandomState(0)
    pixels = [rng.randint(0, 256, (6, 6, 3)).astype(np.uint8) for _ in range(4)]
    labels = [3, 0, 2, 1]
    folder = tmp_path / "b64"
    folder.mkdir()
    # Standard base64 (with '+' and '/') must decode.
    lines = ["%s\t%d" % (base64.b64encode(datagen.png_bytes(p)).decode(), lb)
             for p, lb in zip(pixels, labels)]
    assert any("+" in ln or "/" in ln for ln in lines)
    (folder / "d.txt").write_text("\n".join(lines) + "\n")
    (folder / "file_list.txt").write_text("d.txt\n")
    rec = tmp_path / "rec"
    rec.mkdir()
    with tf.io.TFRecordWriter(str(rec / "train-0.tfrecord")) as w:
        for p, lb in zip(pixels, labels):
            w.write(example_codec.image_to_tfexample(datagen.png_bytes(p), "png", 6, 6,
                                                     lb).SerializeToString())
    by_label = {lb: p for p, lb in zip(pixels, labels)}
    for folder_path, fmt in ((str(folder), "base64"), (str(rec), "tfrecord")):
        found_fmt, files = data.resolve_train_files(folder_path)
        assert found_fmt == fmt
        assert data.count_examples(files, fmt) == 4
        ds = data.train_dataset(files, fmt, (3, 6, 6), 4, num_classes=4, seed=0)
        images, lbls = tf.data.make_one_shot_iterator(ds).get_next()
        with tf.Session() as sess:
            im, lb = sess.run([images, lbls])
        assert lb.dtype == np.int64 and sorted(lb.tolist()) == [0, 1, 2, 3]
        for x, y in zip(im, lb):
            want = (by_label[int(y)].astype(np.float32) - 127.5) / 128.0
            assert np.allclose(x, want) or np.allclose(x, want[:, ::-1])  # random flip


def test_label_outside_class_count_names_the_file(tmp_path, graph):
    import tensorflow.compat.v1 as tf
    from images.largescale import data
    folder = tmp_path / "b64"
    folder.mkdir()
    img = base64.b64encode(datagen.png_bytes(np.zeros((4, 4, 3), np.uint8))).decode()
    (folder / "d.txt").write_text("%s\t9\n" % img)
    (folder / "file_list.txt").write_text("d.txt\n")
    fmt, files = data.resolve_train_files(str(folder))
    ds = data.train_dataset(files, fmt, (3, 4, 4), 1, num_classes=5)
    batch = tf.data.make_one_shot_iterator(ds).get_next()
    with tf.Session() as sess, pytest.raises(tf.errors.InvalidArgumentError, match="d.txt"):
        sess.run(batch)


# ---------------------------------------------------------------- Entry, single process
def test_entry_trains_with_bfloat16_and_dynamic_loss_scale_then_resumes(tmp_path):
    def make():
        ins = Entry()
        ins.set_model("lenet")
        ins.set_image_shape((3, 28, 28))
        ins.set_emb_size(8)
        ins.set_class_num(20)
        ins.set_loss_type("dist_combined")
        ins.set_train_batch_size(4)
        ins.set_mixed_precision(True, init_loss_scaling=256.0, incr_every_n_steps=2,
                                dtype="bfloat16")
        ins.set_model_save_dir(str(tmp_path / "out"))
        ins.set_calc_acc(True)
        return ins

    ins = make()
    ins.set_train_steps(3)
    assert ins.train()["step"] == 3
    ins = make()
    ins.set_train_steps(5)  # resumes from the checkpoint in the save dir
    with ins.trainer() as t:
        assert t.fit() == 5
        values = t.variable_values()
    assert values["loss_scale/scale"] > 256.0  # grew after clean steps
    assert all(np.all(np.isfinite(v)) for v in values.values())
    meta = checkpoint.read_meta(checkpoint.resolve_checkpoint(str(tmp_path / "out")))
    assert meta["step"] == 5 and meta["num_classes"] == 20 and meta["emb_size"] == 8
    # Loading into a model with another class count is refused with the fix.
    other = make()
    other.set_class_num(21)
    other.set_train_steps(6)
    with pytest.raises(ValueError, match="num_classes=20"):
        other.train()


def test_export_without_checkpoint_is_a_clear_error(tmp_path):
    ins = Entry()
    ins.set_model_save_dir(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError):
        ins.convert_for_prediction()



def test_whole_layer_checkpoint_continues_with_a_dist_loss(tmp_path):
    def make(loss, save, steps):
        ins = Entry()
        ins.set_model("lenet")
        ins.set_image_shape((3, 28, 28))
        ins.set_emb_size(8)
        ins.set_class_num(9)
        ins.set_loss_type(loss)
        ins.set_train_batch_size(4)
        ins.set_train_steps(steps)
        ins.set_model_save_dir(str(tmp_path / save))
        return ins

    make("arcface", "whole", 2).train()
    ins = make("dist_arcface", "dist", 3)
    ins.set_checkpoint_dir(str(tmp_path / "whole"))
    assert ins.train()["step"] == 3
    meta = checkpoint.read_meta(checkpoint.resolve_checkpoint(str(tmp_path / "dist")))
    assert meta["loss_type"] == "dist_arcface" and meta["step"] == 3
