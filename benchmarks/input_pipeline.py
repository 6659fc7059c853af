#!/usr/bin/env python
"""Input-pipeline throughput beside the rate resnet_v1_50 training consumes images.

    python benchmarks/input_pipeline.py [--quick]

Writes CIFAR-10-style records (32x32 PNG, as the cifar10 converter stores them) and 224x224 JPEG
records (quality 90, as photos are usually stored) cut from scikit-learn's two sample photographs,
then times the trainer's pipeline (``pipeline.build_dataset`` with the trainer's default tuning:
shuffle 1024, 8 parallel batches, 16 preprocessing threads, prefetch 32) in training mode with
the preprocessing each dataset is trained with.  In the same run it measures resnet_v1_50
training on a fixed batch (``benchmarks.common.zoo_training_rate``) and fed from the JPEG
records through the pipeline.  Prints one Markdown table.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import print_table, session_config, zoo_training_rate  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

from images import training  # noqa: E402
from images.datasets import dataset_factory, example_codec, pipeline, tfrecord_writer  # noqa
from images.models import model_factory  # noqa: E402
from images.preprocessing import preprocessing_factory  # noqa: E402
from images.utils import losses  # noqa: E402

DEFAULTS = dict(shuffle_buffer_size=1024, num_parallel_batches=8, num_preprocessing_threads=16,
                prefetch_buffer_size=32)


def _photos():
    from sklearn.datasets import load_sample_images
    return [np.asarray(p) for p in load_sample_images().images]  # 427x640 RGB each


def _crops(count, side, rng):
    """``count`` random crops (random scale, flip) of the sample photos, resized to ``side``."""
    from PIL import Image
    photos = _photos()
    for _ in range(count):
        photo = photos[rng.randint(len(photos))]
        h, w = photo.shape[:2]
        s = rng.randint(min(h, w) // 3, min(h, w))
        y, x = rng.randint(h - s + 1), rng.randint(w - s + 1)
        crop = Image.fromarray(photo[y:y + s, x:x + s]).resize((side, side), Image.BILINEAR)
        if rng.rand() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        yield crop


def write_records(folder, name, count, side, fmt, shards=4, seed=0):
    """Writes ``count`` examples in ``shards`` files; returns the paths and mean bytes/image."""
    import io
    rng = np.random.RandomState(seed)
    sizes = []

    def examples():
        for i, crop in enumerate(_crops(count, side, rng)):
            buf = io.BytesIO()
            crop.save(buf, format="PNG" if fmt == "png" else "JPEG",
                      **({} if fmt == "png" else {"quality": 90}))
            sizes.append(len(buf.getvalue()))
            yield example_codec.image_to_tfexample(buf.getvalue(), fmt, side, side, i % 10)

    paths, _ = tfrecord_writer.write_split(examples(), folder, name, "train", shards)
    return paths, float(np.mean(sizes))


def pipeline_rate(files, preprocessing, image_size, batch_size, batches, warmup, skip=False):
    """Images/s the training pipeline delivers (decoded, preprocessed, batched)."""
    record = dataset_factory.get_dataset("cifar10")  # 3-channel parse of image/encoded
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        ds = pipeline.build_dataset(
            files, record.parse_fn(), preprocessing_factory.get_preprocessing(
                preprocessing, is_training=True), image_size, batch_size, True, 10,
            skip_corrupt_records=skip, **DEFAULTS)
        images, _ = tf.data.make_one_shot_iterator(ds).get_next()
        # Fetch a scalar: the trainer keeps the batch inside the graph too.
        op = tf.reduce_sum(images[:, 0, 0, 0])
        with tf.Session(config=session_config()) as sess:
            for _ in range(warmup):
                sess.run(op)
            start = time.perf_counter()
            for _ in range(batches):
                sess.run(op)
            return batches * batch_size / (time.perf_counter() - start)


def resnet_from_records(files, batch_size, steps, warmup):
    """Images/s of resnet_v1_50 training fed by the pipeline (vgg preprocessing, 224x224)."""
    record = dataset_factory.get_dataset("cifar10")
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        ds = pipeline.build_dataset(
            files, record.parse_fn(), preprocessing_factory.get_preprocessing(
                "vgg", is_training=True), 224, batch_size, True, 1000, **DEFAULTS)
        images, labels = tf.data.make_one_shot_iterator(ds).get_next()
        global_step = tf.train.get_or_create_global_step()
        network_fn = model_factory.get_network_fn("resnet_v1_50", 1000, weight_decay=1e-4,
                                                  is_training=True)
        logits, _, _ = training.build_network(network_fn, images)
        loss, _ = losses.classification_loss(logits, labels, 1000)
        train_op = training.build_train_op(tf.train.MomentumOptimizer(0.01, 0.9), loss,
                                           global_step)
        with tf.Session(config=session_config()) as sess:
            sess.run(tf.global_variables_initializer())
            for _ in range(warmup):
                sess.run(train_op)
            start = time.perf_counter()
            for _ in range(steps):
                sess.run(train_op)
            return steps * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and steps")
    args = parser.parse_args()
    q = args.quick
    folder = tempfile.mkdtemp(prefix="fastnn-input-bench-")
    try:
        cifar, cifar_bytes = write_records(folder, "cifar", 512 if q else 4096, 32, "png")
        jpeg, jpeg_bytes = write_records(folder, "jpeg", 128 if q else 512, 224, "jpeg")
        train_rate, _ = zoo_training_rate("resnet_v1_50", 16, steps=3 if q else 6,
                                          warmup=1 if q else 2, measure_flops=False)
        rows = []
        for label, files, prep, size, batch, nbytes in (
                ("CIFAR-10 records, 32x32 PNG", cifar, "cifarnet", 32, 128, cifar_bytes),
                ("224x224 JPEG records", jpeg, "inception", 224, 16, jpeg_bytes),
                ("224x224 JPEG records", jpeg, "vgg", 224, 16, jpeg_bytes)):
            for skip in (False, True):
                batches = (8 if q else 40) if size == 224 else (8 if q else 60)
                rate = pipeline_rate(files, prep, size, batch, batches, warmup=3, skip=skip)
                rows.append([label + (" (--skip_corrupt_records)" if skip else ""),
                             "%.1f KB" % (nbytes / 1024), prep, batch, "%.0f" % rate,
                             "%.1fx" % (rate / train_rate)])
        fed = resnet_from_records(jpeg, 16, steps=3 if q else 6, warmup=1 if q else 2)
        rows.append(["resnet_v1_50 training, fixed batch (zoo_training_rate)", "-", "-", 16,
                     "%.1f" % train_rate, "1.0x"])
        rows.append(["resnet_v1_50 training fed by the JPEG pipeline (vgg)", "%.1f KB"
                     % (jpeg_bytes / 1024), "vgg", 16, "%.1f" % fed,
                     "%.2fx" % (fed / train_rate)])
        print_table("Input pipeline: decoded + preprocessed images/s (training mode, %d CPU "
                    "cores)" % os.cpu_count(),
                    ["input", "mean encoded size", "preprocessing", "batch", "images/s",
                     "vs resnet_v1_50 training rate"], rows)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
