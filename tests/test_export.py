"""export_inference_graph.py: TF Serving layout, both signatures, frozen graph, moving averages.

The SavedModel, loaded with plain TensorFlow, must give what the evaluation graph gives on the
same checkpoint and the same encoded images.
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf2
import tensorflow.compat.v1 as tf

from conftest import run_script
from images import evaluation, export, training
from images.datasets import dataset_factory, example_codec, tfrecord_writer
from images.models import model_factory
from images.preprocessing import preprocessing_factory
from images.utils import distributed

DECAY = 0.99


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A cifarnet checkpoint (10 classes) whose moving averages differ from its weights."""
    path = str(tmp_path_factory.mktemp("ckpt") / "model.ckpt")
    rng = np.random.RandomState(1)
    with tf.Graph().as_default():
        model_factory.get_network_fn("cifarnet", 10)(tf.zeros([1, 32, 32, 3]))
        global_step = tf.train.get_or_create_global_step()
        ema = tf.train.ExponentialMovingAverage(DECAY)
        ema.apply(tf.model_variables())
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for var in tf.model_variables():
                value = sess.run(var)
                ema.average(var).load(value + rng.normal(0, 0.05, value.shape), sess)
            global_step.load(5, sess)
            return tf.train.Saver().save(sess, path, global_step=5)


@pytest.fixture(scope="module")
def encoded_images():
    """Six images of assorted sizes and formats, as a client would send them."""
    rng = np.random.RandomState(2)
    shapes = [(32, 32), (32, 32), (40, 48), (24, 30), (32, 32), (64, 20)]
    out = []
    with tf.Graph().as_default(), tf.Session() as sess:
        pixels = tf.placeholder(tf.uint8, [None, None, 3])
        png, jpeg = tf.io.encode_png(pixels), tf.io.encode_jpeg(pixels)
        for i, shape in enumerate(shapes):
            image = rng.randint(0, 256, shape + (3,), dtype=np.uint8)
            out.append(sess.run(jpeg if i % 3 == 2 else png, {pixels: image}))
    return out


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory, encoded_images):
    """The same encoded images as a cifar10 'test' split, labels 0..5."""
    d = str(tmp_path_factory.mktemp("records"))
    examples = [example_codec.image_to_tfexample(b, "png", 0, 0, i)
                for i, b in enumerate(encoded_images)]
    tfrecord_writer.write_shards(examples, tfrecord_writer.shard_paths(d, "cifar10", "test"))
    return d


def eval_graph_outputs(checkpoint_path, records, moving_average_decay, num_classes=10):
    """What the evaluation graph computes: (logits or fc4 features, preprocessed images)."""
    dataset = dataset_factory.get_dataset("cifar10")
    with tf.Graph().as_default():
        ds = training.make_input_dataset(
            dataset, dataset_dir=records, split_name="test", file_names=None,
            preprocessing_fn=preprocessing_factory.get_preprocessing("cifarnet"),
            image_size=32, batch_size=100, is_training=False, num_classes=10, channels=3,
            num_epochs=1, cluster=distributed.Cluster(), seed=0, labels_offset=0,
            input_options=dict(num_preprocessing_threads=1, num_parallel_batches=1,
                               prefetch_buffer_size=1, shuffle_buffer_size=1))
        images, _ = tf.data.make_one_shot_iterator(ds).get_next()
        net, _ = model_factory.get_network_fn("cifarnet", num_classes)(images)
        tf.train.get_or_create_global_step()
        saver = tf.train.Saver(evaluation.variables_to_restore(moving_average_decay))
        with tf.Session() as sess:
            saver.restore(sess, checkpoint_path)
            return sess.run([net, images])


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_export_round_trip_equals_the_eval_graph(tmp_path, checkpoint, encoded_images,
                                                 records_dir):
    out = str(tmp_path / "serving")
    info = str(tmp_path / "info.json")
    run_script(["export_inference_graph.py", "--model_name=cifarnet",
                "--checkpoint_path=" + os.path.dirname(checkpoint), "--output_dir=" + out,
                "--moving_average_decay=%g" % DECAY, "--top_k=3", "--output_json=" + info])
    # TF Serving's layout, nothing half-written left behind.
    assert sorted(os.listdir(out)) == ["1"]
    assert sorted(os.listdir(os.path.join(out, "1"))) == [
        "frozen_graph.pb", "saved_model.pb", "variables"]
    summary = json.load(open(info))
    assert summary["num_classes"] == 10 and summary["version"] == 1  # read from the checkpoint

    logits, preprocessed = eval_graph_outputs(checkpoint, records_dir, DECAY)
    probs = softmax(logits)
    want_top = np.argsort(-probs, axis=1)[:, :3]
    # The averages differ from the weights, so using them is visible.
    raw_logits, _ = eval_graph_outputs(checkpoint, records_dir, None)
    assert not np.allclose(raw_logits, logits, atol=1e-3)

    def check(outputs):
        assert sorted(outputs) == ["classes", "probabilities", "top_k_classes"]
        np.testing.assert_array_equal(outputs["classes"], logits.argmax(axis=1))
        assert outputs["classes"].dtype == np.int64
        np.testing.assert_array_equal(outputs["top_k_classes"], want_top)
        np.testing.assert_allclose(outputs["probabilities"],
                                   np.take_along_axis(probs, want_top, axis=1),
                                   rtol=1e-5, atol=1e-6)

    # Plain TensorFlow 2 loading, as a server would.
    loaded = tf2.saved_model.load(os.path.join(out, "1"))
    assert set(loaded.signatures) == {"serving_default", "predict_images"}
    by_bytes = loaded.signatures["serving_default"](
        image_bytes=tf2.constant(encoded_images))
    check({k: v.numpy() for k, v in by_bytes.items()})
    by_images = loaded.signatures["predict_images"](images=tf2.constant(preprocessed))
    check({k: v.numpy() for k, v in by_images.items()})

    # The frozen GraphDef, for TF1 tools: same tensor names.
    graph_def = tf.GraphDef()
    with open(os.path.join(out, "1", "frozen_graph.pb"), "rb") as f:
        graph_def.ParseFromString(f.read())
    assert not [n.name for n in graph_def.node if n.op in ("VarHandleOp", "VariableV2")]
    with tf.Graph().as_default() as g:
        tf.import_graph_def(graph_def, name="")
        with tf.Session(graph=g) as sess:
            fetched = sess.run({k: k + ":0" for k in export.CLASSIFIER_OUTPUTS},
                               {"image_bytes:0": encoded_images})
    check(fetched)

    # The next export becomes version 2 (TF Serving serves the highest).
    result = export.export("cifarnet", checkpoint, out, moving_average_decay=DECAY)
    assert result.version == 2 and sorted(os.listdir(out)) == ["1", "2"]
    with pytest.raises(FileExistsError, match="already exists"):
        export.export("cifarnet", checkpoint, out, version=2)

    # Accuracy from the exported classes equals eval_image_classifier's on the same records.
    result = evaluation.evaluate(checkpoint, "cifarnet", "cifar10", dataset_dir=records_dir,
                                 split_name="test", moving_average_decay=DECAY)
    labels = np.arange(len(encoded_images))
    assert result["top1"] == pytest.approx(np.mean(logits.argmax(axis=1) == labels))
    assert result["count"] == len(encoded_images)


def test_embeddings_export(tmp_path, checkpoint, encoded_images, records_dir):
    result = export.export("cifarnet", checkpoint, str(tmp_path / "emb"), num_classes=0,
                           moving_average_decay=DECAY)
    assert result.outputs == ["embeddings"]
    loaded = tf2.saved_model.load(result.path)
    got = loaded.signatures["serving_default"](image_bytes=tf2.constant(encoded_images))
    assert sorted(got) == ["embeddings"]
    features, _ = eval_graph_outputs(checkpoint, records_dir, DECAY, num_classes=0)
    assert features.shape == (len(encoded_images), 192)
    np.testing.assert_allclose(got["embeddings"].numpy(), features, rtol=1e-5, atol=1e-5)


def test_export_errors_are_clear(tmp_path, checkpoint):
    no_avg = str(tmp_path / "plain" / "model.ckpt")
    with tf.Graph().as_default():
        model_factory.get_network_fn("cifarnet", 10)(tf.zeros([1, 32, 32, 3]))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver().save(sess, no_avg)
    with pytest.raises(ValueError, match="holds no moving averages"):
        export.export("cifarnet", no_avg, str(tmp_path / "a"), moving_average_decay=DECAY)
    with pytest.raises(ValueError, match="does not fit the model"):
        export.export("cifarnet", no_avg, str(tmp_path / "b"), num_classes=10, image_size=40)
    with pytest.raises(FileNotFoundError):
        export.export("cifarnet", str(tmp_path / "none"), str(tmp_path / "c"))
    with pytest.raises(ValueError, match="cannot tell the class count"):
        export.export("lenet", no_avg, str(tmp_path / "d"))
    # Nothing half-written was left in any output folder.
    for name in "abcd":
        path = tmp_path / name
        assert not path.exists() or not os.listdir(path)
