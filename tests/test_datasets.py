"""The dataset registry, and training on converted data through the trainer (subprocesses)."""
import glob
import os
import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import data_helpers as dh
from conftest import run_script
from images.datasets import convert_image_folder, dataset_factory, dataset_info, labels_file

FILE_DATASETS = [n for n in dataset_factory.list_datasets()
                 if not dataset_factory.get_dataset(n).is_mock]


# ----------------------------------------------------------------------------- registry
@pytest.mark.parametrize("name", dataset_factory.list_datasets())
def test_record_facts_are_consistent(name):
    record = dataset_factory.get_dataset(name)
    assert record.splits and record.channels in (1, 3)
    if record.is_mock:
        assert not record.file_pattern
        return
    assert "%s" in record.file_pattern
    if record.num_classes is not None:
        assert record.num_classes - record.labels_offset >= 2


@pytest.mark.parametrize("name", FILE_DATASETS)
def test_missing_files_name_the_pattern_and_the_folder(tmp_path, name):
    record = dataset_factory.get_dataset(name)
    split = sorted(record.splits)[0]
    with pytest.raises(FileNotFoundError) as e:
        dataset_factory.resolve_files(record, str(tmp_path), split)
    assert repr(record.file_pattern % split) in str(e.value) and str(tmp_path) in str(e.value)
    with pytest.raises(ValueError, match="has no split 'bogus'; its splits are"):
        dataset_factory.resolve_files(record, str(tmp_path), "bogus")


@pytest.mark.parametrize("name", FILE_DATASETS)
def test_parse_fn_reads_a_converter_record(name, graph):
    record = dataset_factory.get_dataset(name)
    pixels = np.arange(4 * 6 * record.channels, dtype=np.uint8).reshape(4, 6, record.channels)
    encoded = dh.png_bytes(pixels[..., 0] if record.channels == 1 else pixels)
    ex = dh.tiny_example(3, encoded=encoded)
    out = record.parse_fn()(tf.constant(ex.SerializeToString()))
    with tf.Session() as sess:
        image, label = sess.run(out[:2])
    np.testing.assert_array_equal(image, pixels)
    assert label == 3
    if record.with_bbox:
        with tf.Session() as sess:
            assert sess.run(out[2]).shape == (1, 0, 4)  # no boxes in this record


def test_train_files_pick_names_inside_dataset_dir(tmp_path):
    record = dataset_factory.get_dataset("cifar10")
    for name in ("cifar10_train.tfrecord", "cifar10_test.tfrecord", "x.tfrecord.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert dataset_factory.resolve_files(record, str(tmp_path), "train") == [
        str(tmp_path / "cifar10_train.tfrecord")]
    assert dataset_factory.resolve_files(
        record, str(tmp_path), file_names="cifar10_test.tfrecord, cifar10_train.tfrecord") == [
        str(tmp_path / "cifar10_test.tfrecord"), str(tmp_path / "cifar10_train.tfrecord")]
    with pytest.raises(FileNotFoundError, match=re.escape("'nothing-*' in")):
        dataset_factory.resolve_files(record, str(tmp_path), file_names="nothing-*")


def test_custom_class_count_and_split_sizes_come_from_the_conversion(tmp_path):
    record = dataset_factory.get_dataset("custom")
    d = str(tmp_path)
    with pytest.raises(FileNotFoundError, match="no labels.txt in"):
        dataset_factory.resolve_num_classes(record, d, None)
    assert dataset_factory.split_size(record, "train", d) is None
    labels_file.write_labels({0: "a", 1: "b", 2: "c"}, d)
    dataset_info.write_info(d, "custom", {"train": 40, "validation": 5}, 3, {})
    assert dataset_factory.resolve_num_classes(record, d, 100) == 3
    assert dataset_factory.split_size(record, "train", d) == 40
    assert dataset_factory.split_size(record, "validation", d) == 5
    labels_file.write_labels({0: "a", 2: "c"}, d)
    with pytest.raises(ValueError, match="0..N-1 without gaps"):
        dataset_factory.resolve_num_classes(record, d, None)


def test_imagenet_record_counts_the_background_class():
    record = dataset_factory.get_dataset("imagenet")
    assert record.num_classes == 1001 and record.with_bbox
    assert record.file_pattern % "validation" == "validation-*"
    assert dataset_factory.split_size(record, "train") == 1281167


# ----------------------------------------------------------------------------- trainer
TRAIN = ["train_image_classifiers.py", "--enable_paisoar=False", "--model_name=lenet",
         "--dataset_name=custom", "--batch_size=4", "--stop_at_step=2", "--optimizer=sgd",
         "--log_loss_every_n_iters=1", "--num_preprocessing_threads=2"]


@pytest.fixture(scope="module")
def custom_dir(tmp_path_factory):
    """The user's own images (3 classes) converted with the custom converter."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.RandomState(0)
    for c in ("apples", "pears", "plums"):
        (root / c).mkdir()
        for i in range(8):
            pixels = rng.randint(0, 256, (20, 24, 3)).astype(np.uint8)
            (root / c / ("%d.png" % i)).write_bytes(dh.png_bytes(pixels))
    out = str(tmp_path_factory.mktemp("custom"))
    convert_image_folder.run(out, num_shards=2, image_dir=str(root), validation_fraction=0.25)
    return out


def copy_dataset(src, dst):
    os.makedirs(dst)
    for path in glob.glob(os.path.join(src, "*")):
        with open(path, "rb") as f, open(os.path.join(dst, os.path.basename(path)), "wb") as g:
            g.write(f.read())
    return dst


def test_custom_dataset_trains_with_no_code_and_corrupt_files_stop_or_skip(custom_dir, tmp_path):
    d = copy_dataset(custom_dir, str(tmp_path / "data"))
    bad = os.path.join(d, "custom_train-00001-of-00002.tfrecord")
    dh.truncate(bad, os.path.getsize(bad) - 100)
    proc = run_script(TRAIN + ["--dataset_dir=%s" % d, "--train_dir=%s" % (tmp_path / "a")],
                      check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "bad input data: corrupt or truncated TFRecord file %s" % bad in proc.stderr
    assert "Traceback" not in proc.stderr
    # With the flag the same data trains; the class count came from labels.txt.
    proc = run_script(TRAIN + ["--dataset_dir=%s" % d, "--train_dir=%s" % (tmp_path / "b"),
                               "--skip_corrupt_records", "--stop_at_step=12"])
    assert "dataset custom (3 classes)" in proc.stderr
    assert "reading 2 file(s) for split 'train'" in proc.stderr
    assert "fastnn: skipped the unreadable end of %s" % bad in proc.stderr
    assert tf.train.latest_checkpoint(str(tmp_path / "b")).endswith("model.ckpt-12")


def test_label_outside_class_count_stops_training_naming_the_file(custom_dir, tmp_path):
    d = copy_dataset(custom_dir, str(tmp_path / "data"))
    bad = os.path.join(d, "custom_train-00000-of-00002.tfrecord")
    dh.write_records(bad, [dh.tiny_example(i % 2) for i in range(5)] + [dh.tiny_example(7)])
    proc = run_script(TRAIN + ["--dataset_dir=%s" % d, "--train_dir=%s" % (tmp_path / "a"),
                               "--stop_at_step=8", "--skip_corrupt_records"], check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert ("bad input data: label 7 (stored 7, labels_offset 0) of record 5 in %s is outside "
            "[0, 3)" % bad) in proc.stderr
