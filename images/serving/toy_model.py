"""A tiny image model exported with the serving contract, to try the server without training.

    python -m images.serving.toy_model --output_dir=/tmp/toy [--kind=embedding] [--version=1]

It has the signatures the exporter writes: ``serving_default`` takes encoded images
(``image_bytes``, tf.string [batch]) and ``predict_images`` takes float ``images`` [batch, H, W, 3]
in [0, 255]; a classifier returns ``classes`` (int64 [batch]), ``top_k_classes`` (int64
[batch, k]) and ``probabilities`` (their softmax probabilities, highest first, as
:mod:`images.export` writes them), an embedding model returns L2-normalised ``embeddings``.
Unlike the exporter's, ``predict_images`` here takes raw pixels in [0, 255].  The weights are
random (seeded): the outputs are deterministic but meaningless.  The serving tests use it.
"""
import argparse
import os
import shutil

import numpy as np
import tensorflow as tf

KINDS = ("classifier", "embedding")


class ToyModel(tf.Module):
    """decode -> resize -> 3x3 conv (stride 2) -> ReLU -> mean pool -> dense."""

    def __init__(self, kind="classifier", num_classes=5, embedding_size=8, image_size=16,
                 top_k=3, seed=0):
        super().__init__()
        if kind not in KINDS:
            raise ValueError("kind must be one of %s, got %r" % (KINDS, kind))
        rng = np.random.RandomState(seed)
        width = embedding_size if kind == "embedding" else num_classes
        self.kind = kind
        self.image_size = image_size
        self.top_k = min(top_k, num_classes)
        self.kernel = tf.Variable(rng.normal(0, 0.5, (3, 3, 3, 16)).astype(np.float32))
        self.dense = tf.Variable(rng.normal(0, 0.5, (16, width)).astype(np.float32))
        self.bias = tf.Variable(rng.normal(0, 0.1, (width,)).astype(np.float32))

    def _head(self, images):
        x = tf.image.resize(images, [self.image_size, self.image_size]) / 127.5 - 1.0
        x = tf.nn.relu(tf.nn.conv2d(x, self.kernel, 2, "SAME"))
        x = tf.matmul(tf.reduce_mean(x, [1, 2]), self.dense) + self.bias
        if self.kind == "embedding":
            return {"embeddings": tf.math.l2_normalize(x, axis=1)}
        top = tf.math.top_k(tf.nn.softmax(x), self.top_k)
        return {"classes": tf.argmax(x, 1, output_type=tf.int64),
                "probabilities": top.values,
                "top_k_classes": tf.cast(top.indices, tf.int64)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(self, image_bytes):
        def decode(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            return tf.image.resize(tf.cast(image, tf.float32), [self.image_size, self.image_size])
        images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec(
            [self.image_size, self.image_size, 3], tf.float32))
        return self._head(images)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32,
                                                name="images")])
    def serve_images(self, images):
        return self._head(images)


def save_toy_model(base_path, version=1, **kwargs):
    """Writes a :class:`ToyModel` to ``base_path/<version>`` (via a temporary name, then renamed).

    Args:
      base_path: the model's base directory (TF Serving layout).
      version: version number (the directory name).
      **kwargs: :class:`ToyModel` options (kind, num_classes, embedding_size, image_size, seed).

    Returns:
      The version directory.
    """
    model = ToyModel(**kwargs)
    final = os.path.join(base_path, str(int(version)))
    if os.path.exists(final):
        raise FileExistsError("%s exists; pick another --version" % final)
    tmp = os.path.join(base_path, ".tmp-%d-%d" % (int(version), os.getpid()))
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(model, tmp, signatures={"serving_default": model.serve_bytes,
                                                "predict_images": model.serve_images})
    os.replace(tmp, final)
    return final


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True, help="model base path")
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--kind", choices=KINDS, default="classifier")
    parser.add_argument("--num_classes", type=int, default=5)
    parser.add_argument("--embedding_size", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)
    path = save_toy_model(args.output_dir, args.version, kind=args.kind,
                          num_classes=args.num_classes, embedding_size=args.embedding_size,
                          image_size=args.image_size, seed=args.seed)
    print(path)


if __name__ == "__main__":
    main()
