"""Downloads and converters against publisher-format archives served from a loopback server."""
import glob
import hashlib
import io
import json
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import data_helpers as dh
from conftest import run_script
from images.datasets import (convert_cifar10, convert_flowers, convert_image_folder,
                             convert_mnist, converters, download, labels_file)
from images.datasets.dataset_info import read_info

CONVERT = "images/datasets/download_and_convert_data.py"


def read_split(dataset_dir, name, split):
    """``[(pixels, label, format)]`` of every record of a split, decoded with TensorFlow."""
    files = sorted(glob.glob(os.path.join(dataset_dir, "%s_%s*.tfrecord" % (name, split))))
    out = []
    with tf.Graph().as_default():
        encoded = tf.placeholder(tf.string)
        decoded = tf.io.decode_image(encoded, expand_animations=False)
        with tf.Session() as sess:
            for path in files:
                for raw in tf.io.tf_record_iterator(path):
                    ex = tf.train.Example.FromString(raw)
                    f = ex.features.feature
                    data = f["image/encoded"].bytes_list.value[0]
                    pixels = sess.run(decoded, {encoded: data})
                    assert f["image/height"].int64_list.value[0] == pixels.shape[0]
                    assert f["image/width"].int64_list.value[0] == pixels.shape[1]
                    out.append((pixels, f["image/class/label"].int64_list.value[0],
                                f["image/format"].bytes_list.value[0], data))
    return out


def assert_close_pixels(a, b, tol=8):
    assert a.shape == b.shape
    assert np.abs(a.astype(int) - b.astype(int)).max() <= tol


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_every_registered_converter_is_a_dataset():
    from images.datasets import dataset_factory
    for name in converters.list_converters():
        assert name in dataset_factory.list_datasets()
    with pytest.raises(ValueError, match="valid: cifar10"):
        converters.get_converter("imagenet")


# ----------------------------------------------------------------------------- downloads
def test_download_resumes_partial_file_with_range_and_shows_progress(tmp_path, capsys):
    data = os.urandom(300_000)
    remote_name = "blob.bin"
    part = tmp_path / (remote_name + ".part")
    part.write_bytes(data[:123_456])
    with dh.serve({"/d/" + remote_name: data}) as srv:
        remote = download.RemoteFile(remote_name, [srv.url + "/d/" + remote_name],
                                     md5=hashlib.md5(data).hexdigest())
        path = download.fetch(remote, str(tmp_path))
        assert srv.requests == [("/d/blob.bin", "bytes=123456-")]
    assert open(path, "rb").read() == data and not part.exists()
    err = capsys.readouterr().err
    assert "resuming blob.bin" in err and "100.0%" in err


def test_interrupted_download_leaves_part_and_next_run_resumes(tmp_path):
    data = os.urandom(200_000)
    with dh.serve({"/x.bin": data}) as srv:
        remote = download.RemoteFile("x.bin", [srv.url + "/x.bin"])
        srv.cut_after["/x.bin"] = 70_000
        with pytest.raises(download.DownloadError, match="70000 of 200000 bytes"):
            download.fetch(remote, str(tmp_path), progress=False)
        assert not (tmp_path / "x.bin").exists()
        assert (tmp_path / "x.bin.part").stat().st_size == 70_000
        download.fetch(remote, str(tmp_path), progress=False)
        assert srv.requests[-1] == ("/x.bin", "bytes=70000-")
    assert (tmp_path / "x.bin").read_bytes() == data


def test_server_ignoring_range_restarts_from_scratch(tmp_path):
    data = os.urandom(50_000)
    (tmp_path / "y.bin.part").write_bytes(b"garbage-prefix")
    with dh.serve({"/y.bin": data}, honour_range=False) as srv:
        download.fetch(download.RemoteFile("y.bin", [srv.url + "/y.bin"]), str(tmp_path),
                       progress=False)
    assert (tmp_path / "y.bin").read_bytes() == data


def test_checksum_mismatch_is_an_error_and_removes_the_file(tmp_path):
    with dh.serve({"/z.bin": b"not what the publisher published"}) as srv:
        remote = download.RemoteFile("z.bin", [srv.url + "/z.bin"], md5="0" * 32)
        with pytest.raises(download.ChecksumError, match="publisher gives 0000"):
            download.fetch(remote, str(tmp_path), progress=False)
    assert not (tmp_path / "z.bin").exists()


def test_present_archive_is_not_fetched_and_mirrors_fall_through(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"already here")
    with dh.serve({"/b.bin": b"from the second url"}) as srv:
        download.fetch(download.RemoteFile("a.bin", [srv.url + "/a.bin"]), str(tmp_path))
        assert srv.requests == []
        # The first URL answers 404; the second is used.
        remote = download.RemoteFile("b.bin", [srv.url + "/missing/b.bin", srv.url + "/b.bin"])
        download.fetch(remote, str(tmp_path), progress=False)
    assert (tmp_path / "b.bin").read_bytes() == b"from the second url"


def test_download_url_mirror_forms(tmp_path):
    remote = download.RemoteFile("f.tgz", ["https://publisher/f.tgz"])
    assert download.source_urls(remote, None) == ["https://publisher/f.tgz"]
    assert download.source_urls(remote, "http://m/data/") == ["http://m/data/f.tgz"]
    assert download.source_urls(remote, "http://m/data/f.tgz") == ["http://m/data/f.tgz"]
    with pytest.raises(ValueError, match="http://, https:// or file://"):
        download.source_urls(remote, "ftp://m/")
    src = tmp_path / "mirror"
    src.mkdir()
    (src / "f.tgz").write_bytes(b"local mirror")
    out = tmp_path / "out"
    download.fetch(remote, str(out), download_url=src.as_uri() + "/", progress=False)
    assert (out / "f.tgz").read_bytes() == b"local mirror"


def test_failed_download_names_urls_and_the_way_out(tmp_path):
    with dh.serve({}) as srv:
        remote = download.RemoteFile("q.bin", [srv.url + "/q.bin"])
        with pytest.raises(download.DownloadError) as e:
            download.fetch(remote, str(tmp_path), progress=False)
    assert srv.url + "/q.bin" in str(e.value) and "--download_url" in str(e.value)


# ----------------------------------------------------------------------------- cifar10
def test_cifar10_converter_matches_source_pixels_and_labels(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    archive = src / "cifar-10-python.tar.gz"
    expected = dh.make_cifar10_archive(str(archive))
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    out = tmp_path / "out"
    with dh.serve({"/kriz/cifar-10-python.tar.gz": archive.read_bytes()}) as srv:
        monkeypatch.setattr(convert_cifar10, "ARCHIVE", download.RemoteFile(
            archive.name, [srv.url + "/kriz/" + archive.name], md5=md5))
        written = convert_cifar10.run(str(out), progress=False)
    assert sorted(os.path.basename(p) for p in written) == ["cifar10_test.tfrecord",
                                                            "cifar10_train.tfrecord"]
    for split in ("train", "test"):
        records = read_split(str(out), "cifar10", split)
        images, labels = expected[split]
        assert len(records) == len(labels)
        for (pixels, label, fmt, _), image, want in zip(records, images, labels):
            assert fmt == b"png" and label == want
            np.testing.assert_array_equal(pixels, image)
    assert labels_file.read_labels(str(out)) == dict(enumerate(dh.CIFAR_NAMES))
    assert read_info(str(out), "cifar10")["splits"] == {"train": 20, "test": 5}


def test_cifar10_real_checksum_rejects_other_archive(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dh.make_cifar10_archive(str(out / "cifar-10-python.tar.gz"))
    proc = run_script([CONVERT, "--dataset_name=cifar10", "--dataset_dir=%s" % out], check=False)
    assert proc.returncode == 2
    assert "not downloading it again" in proc.stderr
    assert "publisher gives c58f30108f718f92721af3b95e74349a" in proc.stderr


def test_cifar10_refuses_pickles_that_call_arbitrary_code(tmp_path):
    import pickle
    evil = pickle.dumps({b"data": os.system})  # a reference to a global outside numpy
    with pytest.raises(ValueError, match="not a CIFAR-10 python batch"):
        convert_cifar10._load_pickle(evil, "data_batch_1")


def test_conversion_is_reproducible_and_shards_are_equal(tmp_path, monkeypatch):
    archive = tmp_path / "cifar-10-python.tar.gz"
    dh.make_cifar10_archive(str(archive))
    monkeypatch.setattr(convert_cifar10, "ARCHIVE", download.RemoteFile(
        archive.name, ["http://unused"], md5=hashlib.md5(archive.read_bytes()).hexdigest()))
    digests = []
    for run in ("a", "b"):
        out = tmp_path / run
        out.mkdir()
        (out / archive.name).write_bytes(archive.read_bytes())
        written = convert_cifar10.run(str(out), num_shards=3, progress=False)
        digests.append([sha(p) for p in sorted(written)])
        names = sorted(os.path.basename(p) for p in written)
        assert names[:3] == ["cifar10_test-%05d-of-00003.tfrecord" % i for i in range(3)]
        counts = [sum(1 for _ in tf.io.tf_record_iterator(p))
                  for p in sorted(glob.glob(str(out / "cifar10_train-*")))]
        assert sorted(counts) == [6, 7, 7]
    assert digests[0] == digests[1]


# ----------------------------------------------------------------------------- mnist
def test_mnist_cli_downloads_four_idx_files_from_mirror(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    expected = dh.make_mnist_files(str(src))
    files = {"/mirror/" + n: (src / n).read_bytes() for n in os.listdir(src)}
    out = tmp_path / "out"
    with dh.serve(files) as srv:
        proc = run_script([CONVERT, "--dataset_name=mnist", "--dataset_dir=%s" % out,
                           "--download_url=%s/mirror/" % srv.url])
        assert len(srv.requests) == 4
    assert "Finished converting the mnist dataset" in proc.stdout
    for split in ("train", "test"):
        records = read_split(str(out), "mnist", split)
        images, labels = expected[split]
        assert [r[1] for r in records] == list(labels)
        for (pixels, _, fmt, _), image in zip(records, images):
            assert fmt == b"png" and pixels.shape == (28, 28, 1)
            np.testing.assert_array_equal(pixels[..., 0], image)
    # A second run finds the archives and fetches nothing.
    proc = run_script([CONVERT, "--dataset_name=mnist", "--dataset_dir=%s" % out,
                       "--download_url=http://127.0.0.1:9/"])
    assert proc.stderr.count("not downloading it again") == 4


def test_mnist_idx_header_is_checked(tmp_path):
    src = tmp_path
    dh.make_mnist_files(str(src))
    with open(src / "t10k-labels-idx1-ubyte.gz", "rb") as f:
        raw = f.read()
    import gzip
    data = gzip.decompress(raw)
    with gzip.open(src / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(data[:-2])  # two labels short of what the header announces
    with pytest.raises(ValueError, match="header announces 5 = 5 values but the file holds 3"):
        convert_mnist.load_split(str(src), "test")


def test_cli_rejects_options_the_converter_does_not_read(tmp_path):
    proc = run_script([CONVERT, "--dataset_name=cifar10", "--dataset_dir=%s" % tmp_path,
                       "--image_dir=/x"], check=False)
    assert proc.returncode != 0 and "--image_dir has no meaning for --dataset_name=cifar10" \
        in proc.stderr


# ----------------------------------------------------------------------------- flowers
def test_flowers_converter_keeps_jpeg_bytes_and_slim_split(tmp_path, monkeypatch):
    archive = tmp_path / "flower_photos.tgz"
    files = dh.make_flowers_archive(str(archive), per_class=75)
    out = tmp_path / "out"
    with dh.serve({"/example_images/flower_photos.tgz": archive.read_bytes()}) as srv:
        written = convert_flowers.run(str(out), download_url=srv.url + "/example_images/",
                                      progress=False, num_workers=2)
    assert sorted(os.path.basename(p) for p in written) == ["flowers_train.tfrecord",
                                                            "flowers_validation.tfrecord"]
    by_bytes = {data: name for name, data in files.items()}
    seen = []
    for split, size in (("train", 375 - 350), ("validation", 350)):
        records = read_split(str(out), "flowers", split)
        assert len(records) == size
        for pixels, label, fmt, data in records:
            name = by_bytes[data]  # stored unchanged
            assert fmt == b"jpeg" and dh.FLOWER_CLASSES[label] == name.split("/")[0]
            # TensorFlow's and Pillow's JPEG decoders round differently by a few levels.
            assert_close_pixels(pixels, np.asarray(Image.open(io.BytesIO(data))))
            seen.append(name)
    assert sorted(seen) == sorted(files)
    assert labels_file.read_labels(str(out)) == dict(enumerate(dh.FLOWER_CLASSES))
    assert not [p for p in os.listdir(out) if p.startswith(".flowers-")]  # scratch removed


# ----------------------------------------------------------------------------- custom
def make_image_folder(root, per_class=10, classes=("cats", "dogs", "owls"), seed=0):
    """Class folders of JPEG and PNG files; returns ``{path: (pixels, class index)}``."""
    rng = np.random.RandomState(seed)
    made = {}
    for c, cls in enumerate(classes):
        os.makedirs(os.path.join(root, cls, "sub"), exist_ok=True)
        for i in range(per_class):
            pixels = rng.randint(0, 256, (12 + i, 10, 3)).astype(np.uint8)
            if i % 2:
                path = os.path.join(root, cls, "%02d.png" % i)
                data = dh.png_bytes(pixels)
            else:
                path = os.path.join(root, cls, "sub" if i == 0 else "", "%02d.jpg" % i)
                data = dh.jpeg_bytes(pixels)
            with open(path, "wb") as f:
                f.write(data)
            made[path] = (data, c)
    return made


def add_bad_files(root):
    bad = {}
    good = dh.jpeg_bytes(np.zeros((20, 20, 3), np.uint8))
    bad[os.path.join(root, "cats", "truncated.jpg")] = good[: len(good) // 2]
    bad[os.path.join(root, "dogs", "notes.txt")] = b"these are my dogs"
    bad[os.path.join(root, "dogs", "empty.png")] = b""
    buf = io.BytesIO()
    Image.new("RGB", (5, 5)).save(buf, format="GIF")
    bad[os.path.join(root, "owls", "anim.gif")] = buf.getvalue()
    bad[os.path.join(root, "README.md")] = b"stray file outside class folders"
    for path, data in bad.items():
        with open(path, "wb") as f:
            f.write(data)
    return bad


def test_image_folder_converter_reports_bad_files_and_keeps_the_rest(tmp_path, capsys):
    root = str(tmp_path / "photos")
    made = make_image_folder(root)
    bad = add_bad_files(root)
    out = str(tmp_path / "out")
    written = convert_image_folder.run(out, num_shards=2, image_dir=root,
                                       validation_fraction=0.2, num_workers=2)
    err = capsys.readouterr().err
    for path in bad:
        assert "skipped %s: " % path in err, err
    assert "cannot decode" in err and "unsupported image format GIF" in err
    assert "not inside a class sub-folder" in err and "empty file" in err
    assert len(written) == 4
    assert labels_file.read_labels(out) == {0: "cats", 1: "dogs", 2: "owls"}
    info = read_info(out, "custom")
    assert info["splits"] == {"train": 24, "validation": 6}  # 2 of each 10 per class
    assert sorted(s["path"] for s in info["skipped"]) == sorted(bad)
    by_bytes = {data: (path, label) for path, (data, label) in made.items()}
    seen = []
    for split in ("train", "validation"):
        for pixels, label, fmt, data in read_split(out, "custom", split):
            path, want = by_bytes[data]
            assert label == want and fmt == (b"png" if path.endswith(".png") else b"jpeg")
            source = np.asarray(Image.open(path).convert("RGB"))
            if fmt == b"png":
                np.testing.assert_array_equal(pixels, source)
            else:
                assert_close_pixels(pixels, source)
            seen.append(path)
    assert sorted(seen) == sorted(made)


def test_image_folder_conversion_is_reproducible_across_worker_counts(tmp_path):
    root = str(tmp_path / "photos")
    make_image_folder(root, per_class=6)
    digests = []
    for workers in (1, 3):
        out = str(tmp_path / ("out%d" % workers))
        written = convert_image_folder.run(out, num_shards=2, image_dir=root,
                                           validation_fraction=0.34, num_workers=workers)
        digests.append([sha(p) for p in sorted(written)])
    assert digests[0] == digests[1]


def test_image_folder_errors_say_how_to_fix(tmp_path):
    with pytest.raises(ValueError, match="give --image_dir"):
        convert_image_folder.run(str(tmp_path / "o"))
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.jpg").write_bytes(dh.jpeg_bytes(np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(ValueError, match="has no sub-folders"):
        convert_image_folder.run(str(tmp_path / "o"), image_dir=str(flat))
    junk = tmp_path / "junk"
    (junk / "cls").mkdir(parents=True)
    (junk / "cls" / "x.jpg").write_bytes(b"nope")
    with pytest.raises(ValueError, match="no usable JPEG or PNG image"):
        convert_image_folder.run(str(tmp_path / "o"), image_dir=str(junk))
    assert not glob.glob(str(tmp_path / "o" / "*.tfrecord"))
    with pytest.raises(ValueError, match="validation_fraction must be in"):
        convert_image_folder.split_items([("a", 0)], 1.0)


def test_validation_split_is_stratified_and_seeded():
    items = [("c%d/%03d" % (c, i), c) for c in range(3) for i in range(20 + 10 * c)]
    train, val = convert_image_folder.split_items(items, 0.25)
    assert sorted(train + val) == sorted(items)
    assert [sum(1 for _, c in val if c == k) for k in range(3)] == [5, 8, 10]
    assert convert_image_folder.split_items(items, 0.25) == (train, val)
    assert json.dumps(train) != json.dumps(sorted(train))  # shuffled
