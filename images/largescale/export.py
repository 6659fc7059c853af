"""The embedding model for inference: restore from a checkpoint, embed, export a SavedModel.

The exported model ends at the embedding (no FC layer): its output is a vector per image, to be
compared with other images' vectors (cosine similarity / squared L2 of the normalised vectors), not
a class.
"""
import logging
import os
import shutil

import numpy as np
import tensorflow.compat.v1 as tf

from images.largescale import checkpoint as ckpt_lib
from images.largescale import data, embedding

log = logging.getLogger("fastnn")

SERVING_KEY = "serving_default"
FLOAT_KEY = "predict_images"  # the name the zoo's exporter and server use


class TrainedState:
    """The embedding model's variables held in memory (what ``train()`` leaves when it saves no
    checkpoint), usable wherever a checkpoint folder is."""

    def __init__(self, values, step, emb_size):
        self.values, self.step, self.emb_size = dict(values), int(step), int(emb_size)


def _restore_backbone(sess, source):
    """Restores the graph's variables (backbone and embedding layer) from a checkpoint folder
    or a :class:`TrainedState`."""
    variables = tf.global_variables()
    if isinstance(source, TrainedState):
        saved, where = source.values, "the trained model in memory"
    else:
        reader = tf.train.load_checkpoint(os.path.join(source, ckpt_lib.SHARED_PREFIX))
        saved, where = reader.get_variable_to_shape_map(), "checkpoint %s" % source
    missing = [v.op.name for v in variables if v.op.name not in saved]
    if missing:
        raise ValueError("%s lacks %d variable(s) of the embedding model, e.g. %s: "
                         "is the backbone (set_model) or emb_size the one it was trained with?"
                         % (where, len(missing), missing[:3]))
    if isinstance(source, TrainedState):
        for var in variables:
            var.load(source.values[var.op.name], sess)
        return
    tf.train.Saver(var_list=variables).restore(sess, os.path.join(source,
                                                                  ckpt_lib.SHARED_PREFIX))


def _source_meta(checkpoint):
    """``(restore source, step, emb_size)`` of a checkpoint folder, a ``model_save_dir`` or a
    :class:`TrainedState`."""
    if isinstance(checkpoint, TrainedState):
        return checkpoint, checkpoint.step, checkpoint.emb_size
    folder = ckpt_lib.resolve_checkpoint(checkpoint)
    meta = ckpt_lib.read_meta(folder)
    return folder, meta["step"], meta["emb_size"]


def _check_width(embeddings, emb_size, where):
    width = int(embeddings.shape[-1])
    if width != emb_size:
        raise ValueError("%s has emb_size %d, the model %d: set_emb_size(%d) or use the model "
                         "it was trained with" % (where, emb_size, width, emb_size))


class EmbeddingModel:
    """The embedding network restored from a checkpoint, in its own graph and session.

    Encoded images go through the same decoding as training and the served model
    (:func:`images.largescale.data.decode_batch`).

    Args:
      backbone: registry name, callable or model object, as in training.
      emb_size: embedding width.
      image_shape: ``(C, H, W)``.
      checkpoint: a checkpoint folder, a ``model_save_dir`` or a :class:`TrainedState`.
    """

    def __init__(self, backbone, emb_size, image_shape, checkpoint, session_config=None):
        source, self.step, saved_emb = _source_meta(checkpoint)
        self.folder = source if not isinstance(source, TrainedState) else None
        channels, height, width = image_shape
        self.image_shape = tuple(image_shape)
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.images = tf.placeholder(tf.float32, [None, height, width, channels], "images")
            self.embeddings = embedding.build_embedding(self.images, backbone=backbone,
                                                        emb_size=emb_size, is_training=False)
            _check_width(self.embeddings, saved_emb, self.folder or "the trained model")
            self.image_bytes = tf.placeholder(tf.string, [None], "image_bytes")
            self.bytes_embeddings = embedding.build_embedding(
                data.decode_batch(self.image_bytes, self.image_shape), backbone=backbone,
                emb_size=emb_size, is_training=False, reuse=True)
            self.sess = tf.Session(config=session_config)
            _restore_backbone(self.sess, source)

    def embed(self, images):
        """Embeddings ``[N, emb]`` of float images normalised as in training."""
        return self.sess.run(self.embeddings, {self.images: images})

    def embed_encoded(self, encoded, batch_size=64, normalize=True):
        """Embeddings of encoded (JPEG/PNG) images, or of a uint8 array ``[N, H, W, C]``;
        L2-normalised unless ``normalize`` is False."""
        if isinstance(encoded, np.ndarray):
            pixels = encoded.astype(np.float32)
            out = [self.embed((pixels[i:i + batch_size] - 127.5) / 128.0)
                   for i in range(0, len(pixels), batch_size)]
        else:
            encoded = [bytes(e) for e in encoded]
            out = [self.sess.run(self.bytes_embeddings,
                                 {self.image_bytes: encoded[i:i + batch_size]})
                   for i in range(0, len(encoded), batch_size)]
        emb = np.concatenate(out, axis=0) if out else np.zeros((0, 0), np.float32)
        if normalize and len(emb):
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb

    def close(self):
        self.sess.close()


def next_version(export_dir):
    """One more than the largest numbered version folder in ``export_dir`` (1 when none)."""
    versions = [int(n) for n in os.listdir(export_dir) if n.isdigit()] if os.path.isdir(
        export_dir) else []
    return max(versions, default=0) + 1


def export_saved_model(*, backbone, emb_size, image_shape, checkpoint, export_dir, version=None):
    """Exports the embedding model as a SavedModel in TF Serving's layout
    ``export_dir/<version>/``.

    Signatures:
      ``serving_default``: ``image_bytes`` (string ``[batch]``, encoded JPEG/PNG) ->
      ``embeddings`` (float32 ``[batch, emb_size]``, L2-normalised, ready for cosine similarity
      or squared L2 distance) and ``raw_embeddings`` (the network's output before
      normalisation).
      ``predict_images``: ``images`` (float32 ``[batch, H, W, C]``, already
      ``(x - 127.5) / 128``) -> the same outputs.

    Returns:
      The version folder.
    """
    source, _, saved_emb = _source_meta(checkpoint)
    version = int(version) if version is not None else next_version(export_dir)
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError("%s exists; choose another version" % final)
    channels, height, width = image_shape
    os.makedirs(export_dir, exist_ok=True)
    tmp = os.path.join(export_dir, ".tmp-%d-%d" % (version, os.getpid()))
    shutil.rmtree(tmp, ignore_errors=True)
    with tf.Graph().as_default():
        image_bytes = tf.placeholder(tf.string, [None], name="image_bytes")
        decoded = data.decode_batch(image_bytes, image_shape)
        float_images = tf.placeholder(tf.float32, [None, height, width, channels], "images")
        # Two towers sharing the variables: each signature feeds only its own input.
        emb_bytes = embedding.build_embedding(decoded, backbone=backbone, emb_size=emb_size,
                                              is_training=False)
        emb_float = embedding.build_embedding(float_images, backbone=backbone,
                                              emb_size=emb_size, is_training=False, reuse=True)
        _check_width(emb_bytes, saved_emb, "the checkpoint")
        with tf.Session() as sess:
            _restore_backbone(sess, source)
            sig = tf.saved_model.signature_def_utils.predict_signature_def
            builder = tf.saved_model.Builder(tmp)
            builder.add_meta_graph_and_variables(
                sess, [tf.saved_model.SERVING], signature_def_map={
                    SERVING_KEY: sig(
                        inputs={"image_bytes": image_bytes},
                        outputs={"embeddings": tf.nn.l2_normalize(emb_bytes, 1),
                                 "raw_embeddings": tf.identity(emb_bytes, "raw_embeddings")}),
                    FLOAT_KEY: sig(
                        inputs={"images": float_images},
                        outputs={"embeddings": tf.nn.l2_normalize(emb_float, 1),
                                 "raw_embeddings": tf.identity(emb_float,
                                                               "float_raw_embeddings")})},
                strip_default_attrs=True)
            builder.save()
    os.replace(tmp, final)
    log.info("exported the embedding model (emb %d) to %s", int(emb_bytes.shape[-1]), final)
    return final
