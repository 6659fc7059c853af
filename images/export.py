"""Exports a checkpoint for serving: a SavedModel in TF Serving's layout and a frozen GraphDef.

Layout (TF Serving loads the highest numbered folder)::

    output_dir/<version>/saved_model.pb
    output_dir/<version>/variables/variables.{index,data-*}
    output_dir/<version>/frozen_graph.pb      (the same graph, variables folded into constants)

The version folder is written under a temporary name in ``output_dir`` and renamed when complete,
so a server watching ``output_dir`` never sees half an export.

Signatures (names are a contract with the model server and its clients; see
docs/finetune_export.md):

* ``serving_default``: input ``image_bytes`` (string ``[batch]``, encoded JPEG/PNG/GIF/BMP),
  decoded and preprocessed in the graph exactly as evaluation does.
* ``predict_images``: input ``images`` (float32 ``[batch, size, size, channels]``, already
  preprocessed).

Both return ``classes`` (int64 ``[batch]``), ``probabilities`` (float32 ``[batch, k]``, the top-k
softmax probabilities, highest first) and ``top_k_classes`` (int64 ``[batch, k]``); a feature
export (``num_classes=0``) returns ``embeddings`` (float32 ``[batch, depth]``) instead.
"""
import dataclasses
import logging
import os
import shutil
from typing import Dict, List

import tensorflow.compat.v1 as tf
import tf_slim as slim

from images import evaluation
from images.models import model_factory
from images.preprocessing import preprocessing_factory

log = logging.getLogger("fastnn")

DEFAULT_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "predict_images"
BYTES_INPUT = "image_bytes"
IMAGES_INPUT = "images"
CLASSIFIER_OUTPUTS = ("classes", "probabilities", "top_k_classes")
EMBEDDING_OUTPUT = "embeddings"
FROZEN_GRAPH = "frozen_graph.pb"


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where the export went and what it holds."""
    path: str
    version: int
    num_classes: int
    image_size: int
    outputs: List[str]
    checkpoint: str


def infer_num_classes(model_name, checkpoint_path, image_size, channels=3):
    """The classifier width stored in ``checkpoint_path`` for network ``model_name``.

    The network is built once with a 1-wide classifier; the variables whose shapes then differ
    from the checkpoint's in the last dimension only are the classifier, and that dimension is the
    class count.

    Raises:
      ValueError: the checkpoint has no classifier for this network; give ``num_classes``.
    """
    probe = 1
    with tf.Graph().as_default():
        network_fn = model_factory.get_network_fn(model_name, num_classes=probe)
        network_fn(tf.placeholder(tf.float32, [1, image_size, image_size, channels]))
        variables = tf.model_variables()
    shapes = tf.train.load_checkpoint(checkpoint_path).get_variable_to_shape_map()
    widths, missing = set(), []
    for var in variables:
        name, shape = var.op.name, var.shape.as_list()
        if name not in shapes:
            missing.append(name)
        elif shape != list(shapes[name]) and shape[-1] == probe and (
                shape[:-1] == list(shapes[name])[:-1]):
            widths.add(shapes[name][-1])
    if missing or len(widths) > 1:
        raise ValueError("cannot tell the class count of %s for model %s (%s); give --num_classes "
                         "(0 exports embeddings)"
                         % (checkpoint_path, model_name,
                            "it lacks %s" % ", ".join(missing[:3]) if missing
                            else "classifier widths %s" % sorted(widths)))
    return widths.pop() if widths else probe


def build_serving_graph(model_name, num_classes, image_size, top_k=5, preprocessing_name=None,
                        use_grayscale=False, channels=3):
    """Builds the serving graph in the default graph.

    Args:
      model_name: network registry name.
      num_classes: classifier width; 0 gives embeddings.
      image_size: side of the network's input.
      top_k: how many classes ``probabilities`` / ``top_k_classes`` hold (capped by the class
        count).
      preprocessing_name: defaults to the model's; the evaluation transform is used.
      use_grayscale: convert to one channel after preprocessing, as in training.
      channels: channels the encoded images are decoded to (1 for grayscale datasets such as
        MNIST).

    Returns:
      ``(inputs, outputs)``: ``{'image_bytes': t, 'images': t}`` and ``{output name: t}``.
    """
    record = model_factory.get_model_record(model_name)
    preprocessing_fn = preprocessing_factory.get_preprocessing(
        preprocessing_name or record.preprocessing_name, is_training=False,
        use_grayscale=use_grayscale)
    image_bytes = tf.placeholder(tf.string, [None], name=BYTES_INPUT)

    def decode(encoded):
        # The same decode as the TFRecord reader (example_codec.parse_example), then the same
        # evaluation transform, so served predictions equal the eval graph's.
        image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
        image = tf.ensure_shape(image, [None, None, channels])
        return preprocessing_fn(image, image_size, image_size)

    out_channels = 1 if use_grayscale else channels
    decoded = tf.map_fn(decode, image_bytes,
                        fn_output_signature=tf.TensorSpec(
                            [image_size, image_size, out_channels], tf.float32))
    # Feeding ``images`` cuts the decode branch off: the second signature needs no bytes.
    images = tf.placeholder_with_default(decoded, [None, image_size, image_size, out_channels],
                                         name=IMAGES_INPUT)
    network_fn = model_factory.get_network_fn(model_name, num_classes=num_classes,
                                              is_training=False)
    net, _ = network_fn(images)
    net = tf.cast(net, tf.float32)
    if not num_classes:
        if net.shape.ndims != 2:
            net = slim.flatten(net)
        outputs = {EMBEDDING_OUTPUT: tf.identity(net, name=EMBEDDING_OUTPUT)}
    else:
        probabilities = tf.nn.softmax(net)
        top = tf.nn.top_k(probabilities, k=min(top_k, num_classes))
        outputs = {
            "classes": tf.argmax(net, axis=1, output_type=tf.int64, name="classes"),
            "probabilities": tf.identity(top.values, name="probabilities"),
            "top_k_classes": tf.cast(top.indices, tf.int64, name="top_k_classes"),
        }
    return {BYTES_INPUT: image_bytes, IMAGES_INPUT: images}, outputs


def next_version(output_dir):
    """One more than the highest numbered folder in ``output_dir`` (1 when there is none)."""
    if not os.path.isdir(output_dir):
        return 1
    versions = [int(n) for n in os.listdir(output_dir) if n.isdigit()]
    return max(versions, default=0) + 1


def export(model_name, checkpoint_path, output_dir, num_classes=None, image_size=None,
           moving_average_decay=None, top_k=5, preprocessing_name=None, use_grayscale=False,
           channels=3, version=None):
    """Writes ``output_dir/<version>/`` (SavedModel + frozen GraphDef) from a checkpoint.

    Args:
      model_name: network registry name.
      checkpoint_path: checkpoint file prefix, or a folder (its latest checkpoint).
      output_dir: the model's base folder, as TF Serving's ``--model_base_path``.
      num_classes: classifier width; None reads it from the checkpoint; 0 exports embeddings.
      image_size: network input side; defaults to the model's.
      moving_average_decay: when set, export the weights' moving averages (training must have
        kept them with ``--moving_average_decay``).
      top_k: classes in ``probabilities`` / ``top_k_classes``.
      preprocessing_name: defaults to the model's.
      use_grayscale: as in training.
      channels: channels encoded images are decoded to.
      version: the version folder's number; defaults to one more than the highest present.

    Returns:
      An :class:`ExportResult`.

    Raises:
      FileNotFoundError: no checkpoint.
      FileExistsError: the version folder already exists.
      ValueError: bad arguments, or the checkpoint does not fit the model.
    """
    if top_k < 1:
        raise ValueError("top_k must be >= 1, got %d" % top_k)
    if channels not in (1, 3):
        raise ValueError("channels must be 1 or 3, got %d" % channels)
    if num_classes is not None and num_classes < 0:
        raise ValueError("num_classes must be >= 0 (0 exports embeddings), got %d" % num_classes)
    checkpoint_path = evaluation.resolve_checkpoint_path(checkpoint_path)
    record = model_factory.get_model_record(model_name)
    size = image_size or record.default_image_size
    if num_classes is None:
        num_classes = infer_num_classes(model_name, checkpoint_path, size, channels)
        log.info("num_classes %d (read from the checkpoint's classifier)", num_classes)
    version = next_version(output_dir) if version is None else int(version)
    final = os.path.join(output_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError("%s already exists; choose another version or output_dir" % final)
    os.makedirs(output_dir, exist_ok=True)
    # A dot-name is not a number, so TF Serving ignores the folder until the rename.
    tmp = os.path.join(output_dir, ".tmp-%d-%d" % (version, os.getpid()))
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        outputs = _write(model_name, checkpoint_path, tmp, num_classes, size,
                         moving_average_decay, top_k, preprocessing_name, use_grayscale, channels)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s (%s) to %s", model_name, checkpoint_path, final)
    return ExportResult(path=final, version=version, num_classes=num_classes, image_size=size,
                        outputs=sorted(outputs), checkpoint=checkpoint_path)


def _signature(inputs: Dict[str, tf.Tensor], outputs: Dict[str, tf.Tensor]):
    return tf.saved_model.signature_def_utils.predict_signature_def(inputs=inputs,
                                                                      outputs=outputs)


def _write(model_name, checkpoint_path, path, num_classes, size, moving_average_decay, top_k,
           preprocessing_name, use_grayscale, channels):
    graph = tf.Graph()
    with graph.as_default():
        inputs, outputs = build_serving_graph(
            model_name, num_classes, size, top_k=top_k, preprocessing_name=preprocessing_name,
            use_grayscale=use_grayscale, channels=channels)
        mapping = evaluation.variables_to_restore(moving_average_decay)
        evaluation.check_restorable(checkpoint_path, mapping, moving_average_decay)
        saver = tf.train.Saver(mapping)
        with tf.Session() as sess:
            saver.restore(sess, checkpoint_path)
            builder = tf.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(
                sess, [tf.saved_model.SERVING],
                signature_def_map={
                    DEFAULT_SIGNATURE: _signature({BYTES_INPUT: inputs[BYTES_INPUT]}, outputs),
                    IMAGES_SIGNATURE: _signature({IMAGES_INPUT: inputs[IMAGES_INPUT]}, outputs),
                },
                strip_default_attrs=True, clear_devices=True)
            builder.save()
            frozen = tf.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), [t.op.name for t in outputs.values()])
    with open(os.path.join(path, FROZEN_GRAPH), "wb") as f:
        f.write(frozen.SerializeToString())
    return outputs
