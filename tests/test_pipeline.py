"""The tf.data pipeline: worker sharding, order, epochs, and what happens with bad input."""
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import data_helpers as dh
from images.datasets import dataset_factory, example_codec, pipeline
from images.preprocessing import preprocessing_factory


def run_all(ds, limit=100000):
    """Every element of a finite dataset (or the first ``limit``)."""
    out = []
    nxt = tf.data.make_one_shot_iterator(ds).get_next()
    with tf.Session() as sess:
        try:
            while len(out) < limit:
                out.append(sess.run(nxt))
        except tf.errors.OutOfRangeError:
            pass
    return out


def identity_preprocess(image, height, width, **unused):
    return tf.image.resize(tf.cast(image, tf.float32), [height, width])


def labelled_files(folder, counts, first=0):
    """TFRecord files of tiny examples labelled with consecutive ids; returns (paths, ids)."""
    paths, ids, label = [], [], first
    for i, n in enumerate(counts):
        path = os.path.join(str(folder), "part-%02d.tfrecord" % i)
        dh.write_records(path, [dh.tiny_example(label + k) for k in range(n)])
        paths.append(path)
        ids.extend(range(label, label + n))
        label += n
    return paths, ids


def labels_of(files, skip=False, **kw):
    kw.setdefault("num_classes", 10 ** 6)
    with tf.Graph().as_default():
        ds = pipeline.build_dataset(
            files, grey_parse(), identity_preprocess, 4, 1, is_training=False,
            skip_corrupt_records=skip, **kw)
        return [int(lb[0]) for _, lb in run_all(ds)]


def grey_parse(channels=1):
    return dataset_factory.DatasetRecord("t", 1, {}, channels=channels).parse_fn()


# ----------------------------------------------------------------------------- sharding
@pytest.mark.parametrize("num_files,num_workers", [(4, 2), (5, 2), (3, 3), (1, 3), (2, 3)])
def test_worker_shards_cover_every_record_exactly_once(tmp_path, num_files, num_workers):
    counts = [3 + i for i in range(num_files)]
    paths, _ = labelled_files(tmp_path, counts)
    everything = {(p, i) for p, n in zip(paths, counts) for i in range(n)}
    seen = []
    for worker in range(num_workers):
        with tf.Graph().as_default():
            recs = run_all(pipeline.read_records(paths, num_workers, worker))
        mine = [(r[1].decode(), int(r[2])) for r in recs]
        if num_files >= num_workers:  # by file: whole files per worker
            assert {p for p, _ in mine} == set(paths[worker::num_workers])
        else:  # by record: a share of every file
            assert {p for p, _ in mine} == set(paths)
        seen.extend(mine)
    assert sorted(seen) == sorted(everything)


@pytest.mark.parametrize("num_files", [3, 1])
def test_decoded_batches_of_all_workers_hold_every_label_once(tmp_path, num_files):
    paths, ids = labelled_files(tmp_path, [4, 5, 6][:num_files])
    seen = []
    for worker in range(2):
        seen.extend(labels_of(paths, num_workers=2, worker_index=worker))
    assert sorted(seen) == ids


def test_read_records_tags_path_and_index(tmp_path):
    paths, _ = labelled_files(tmp_path, [2, 3])
    with tf.Graph().as_default():
        recs = run_all(pipeline.read_records(paths))
    assert sorted((r[1].decode(), int(r[2])) for r in recs) == [
        (paths[0], 0), (paths[0], 1), (paths[1], 0), (paths[1], 1), (paths[1], 2)]


# ----------------------------------------------------------------------------- order, epochs
def train_labels(files, seed, steps=12, **kw):
    with tf.Graph().as_default():
        tf.set_random_seed(seed or 0)
        ds = pipeline.build_dataset(files, grey_parse(), identity_preprocess, 4, 5, True,
                                    1000, seed=seed, shuffle_buffer_size=16, **kw)
        return np.concatenate([lb for _, lb in run_all(ds, steps)]).tolist()


def test_seeded_training_order_repeats_and_batches_are_full(tmp_path):
    paths, ids = labelled_files(tmp_path, [7, 9, 8])
    a = train_labels(paths, seed=7, num_preprocessing_threads=4)
    b = train_labels(paths, seed=7, num_preprocessing_threads=4)
    c = train_labels(paths, seed=8, num_preprocessing_threads=4)
    assert a == b and a != c
    assert len(a) == 60  # 12 full batches of 5 across epoch boundaries
    assert a[:24] != sorted(a[:24])  # shuffled


def test_num_epochs_and_caching(tmp_path):
    paths, ids = labelled_files(tmp_path, [4, 6])
    with tf.Graph().as_default():
        ds = pipeline.build_dataset(paths, grey_parse(), identity_preprocess, 4, 3, True,
                                    100, num_epochs=2, seed=1, use_caching=True)
        batches = run_all(ds)
    got = np.concatenate([lb for _, lb in batches]).tolist()
    assert all(len(lb) == 3 for _, lb in batches)  # the partial last batch is dropped
    assert len(got) == 18 and set(got) == set(ids)
    assert sorted(labels_of(paths, num_epochs=2)) == sorted(ids * 2)


def test_bit_exact_augmentation_with_seed_and_one_thread(tmp_path):
    paths, _ = labelled_files(tmp_path, [6, 6])
    cifar = preprocessing_factory.get_preprocessing("cifarnet", is_training=True)

    def images(seed):
        with tf.Graph().as_default():
            tf.set_random_seed(seed)
            ds = pipeline.build_dataset(paths, grey_parse(), cifar, 6, 4, True, 100,
                                        seed=seed, num_preprocessing_threads=1)
            return np.concatenate([im for im, _ in run_all(ds, 3)])

    np.testing.assert_array_equal(images(3), images(3))


# ----------------------------------------------------------------------------- bad input
def expect_data_error(fn, *needles):
    with pytest.raises(tf.errors.OpError) as e:
        fn()
    message = pipeline.data_error_message(e.value)
    assert message is not None, str(e.value)[:2000]
    for needle in needles:
        assert needle in message, message
    return message


def test_bad_crc_stops_with_file_name_or_is_skipped_and_logged(tmp_path, capfd):
    paths, ids = labelled_files(tmp_path, [5, 5, 5])
    size = os.path.getsize(paths[1]) // 5
    dh.corrupt_byte(paths[1], 2 * size + 20)  # inside the third record's data
    msg = expect_data_error(lambda: labels_of(paths), "corrupt or truncated TFRecord file",
                            paths[1], "record 2 (at byte %d)" % (2 * size),
                            "--skip_corrupt_records")
    assert paths[0] not in msg
    capfd.readouterr()
    assert sorted(labels_of(paths, skip=True)) == ids[:7] + ids[10:]
    err = capfd.readouterr().err
    assert "skipped the unreadable end of %s from record 2" % paths[1] in err
    assert "about 3 record(s); 1 corrupt or truncated file part(s) skipped so far" in err


@pytest.mark.parametrize("cut", ["record", "header"])
def test_truncated_file_stops_with_file_name(tmp_path, capfd, cut):
    paths, ids = labelled_files(tmp_path, [4, 4])
    size = os.path.getsize(paths[0])
    one = size // 4
    # Cutting inside a header makes TensorFlow's reader see a clean end of file.
    dh.truncate(paths[0], size - one + (5 if cut == "header" else 30))
    expect_data_error(lambda: labels_of(paths), paths[0], "the file has %d bytes"
                      % os.path.getsize(paths[0]))
    assert sorted(labels_of(paths, skip=True)) == ids[:3] + ids[4:]
    assert "skipped the unreadable end of %s from record 3" % paths[0] in capfd.readouterr().err


def test_undecodable_image_stops_with_file_and_record_or_is_skipped(tmp_path, capfd):
    good = [dh.tiny_example(i) for i in range(4)]
    bad = dh.tiny_example(9, encoded=b"\x89PNG\r\n\x1a\n but then garbage")
    path = dh.write_records(str(tmp_path / "imgs.tfrecord"), good[:2] + [bad] + good[2:])
    other, _ = labelled_files(tmp_path, [3], first=20)
    files = sorted([path] + other)
    expect_data_error(lambda: labels_of(files), "record 2 of %s cannot be parsed" % path,
                      "--skip_corrupt_records")
    capfd.readouterr()
    assert sorted(labels_of(files, skip=True)) == [0, 1, 2, 3, 20, 21, 22]
    err = capfd.readouterr().err
    assert "skipped record 2 of %s" % path in err
    assert "1 undecodable record(s) skipped so far" in err


def test_label_out_of_range_names_the_file(tmp_path):
    paths, _ = labelled_files(tmp_path, [3, 3])
    expect_data_error(lambda: labels_of(paths, num_classes=5),
                      "label 5 (stored 5, labels_offset 0) of record 2 in %s is outside [0, 5)"
                      % paths[1])
    # Not skippable: a wrong label is a wrong dataset, not a damaged record.
    expect_data_error(lambda: labels_of(paths, skip=True, num_classes=5), paths[1])
    expect_data_error(lambda: labels_of(paths, labels_offset=1), "label -1 (stored 0",
                      paths[0])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tfrecord"):
        pipeline.read_records([str(tmp_path / "nope.tfrecord")])


# ----------------------------------------------------------------------------- imagenet layout
def imagenet_example(label, rng, with_box=True):
    """A record as TF-slim's build_imagenet_data writes it (JPEG, label 1..1000, boxes)."""
    pixels = rng.randint(0, 256, (40, 50, 3)).astype(np.uint8)
    ex = example_codec.image_to_tfexample(
        dh.jpeg_bytes(pixels), "JPEG", 40, 50, label,
        bboxes=[(0.1, 0.2, 0.8, 0.9)] if with_box else None)
    f = ex.features.feature
    f["image/class/synset"].bytes_list.value.append(b"n01440764")
    f["image/class/text"].bytes_list.value.append(b"tench")
    f["image/colorspace"].bytes_list.value.append(b"RGB")
    f["image/channels"].int64_list.value.append(3)
    f["image/filename"].bytes_list.value.append(b"n01440764_1.JPEG")
    return ex


@pytest.mark.parametrize("preprocessing", ["inception", "vgg"])
def test_imagenet_records_with_labels_offset_and_boxes(tmp_path, preprocessing):
    rng = np.random.RandomState(0)
    labels = [1, 1000, 500, 2, 999, 7]
    for i, shard in enumerate((labels[:3], labels[3:])):
        dh.write_records(str(tmp_path / ("train-%05d-of-00002" % i)),
                         [imagenet_example(lb, rng, with_box=(lb != 2)) for lb in shard])
    record = dataset_factory.get_dataset("imagenet")
    files = dataset_factory.resolve_files(record, str(tmp_path), "train")
    assert [os.path.basename(f) for f in files] == ["train-00000-of-00002",
                                                    "train-00001-of-00002"]
    prep = preprocessing_factory.get_preprocessing(preprocessing, is_training=True)
    with tf.Graph().as_default():
        ds = pipeline.build_dataset(files, record.parse_fn(), prep, 32, 6, True,
                                    record.num_classes - 1, num_epochs=1, labels_offset=1,
                                    seed=0)
        (images, got), = run_all(ds)
    assert images.shape == (6, 32, 32, 3) and np.isfinite(images).all()
    assert sorted(got.tolist()) == sorted(lb - 1 for lb in labels)
