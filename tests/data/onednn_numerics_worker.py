#!/usr/bin/env python
"""Prints, as JSON, resnet_v1_50's logits, loss and gradients on a fixed batch (training mode).

    TF_ENABLE_ONEDNN_OPTS=0|1 python tests/data/onednn_numerics_worker.py

Run once with oneDNN off and once on (TensorFlow reads the variable at import): the same graph,
seed and batch give the same weights, so the outputs differ only by the kernels' rounding.  The
same is computed a second time on the batch perturbed by one part in a million, the size of
float32 rounding: how much that moves the outputs is the noise floor of this computation (the
gradients of an untrained ResNet with batch statistics move by percents).  Used by
tests/test_onednn.py.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

from images import training  # noqa: E402
from images.models import model_factory  # noqa: E402
from images.utils import losses, precision  # noqa: E402

BATCH, SIZE, CLASSES = 4, 64, 10


def main():
    tf.disable_eager_execution()
    rng = np.random.RandomState(0)
    batch = rng.uniform(-1, 1, (BATCH, SIZE, SIZE, 3)).astype(np.float32)
    perturbed = batch * (1 + 1e-6 * rng.standard_normal(batch.shape)).astype(np.float32)
    labels = rng.randint(0, CLASSES, BATCH)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        images = tf.placeholder(tf.float32, batch.shape)
        network_fn = model_factory.get_network_fn("resnet_v1_50", CLASSES, weight_decay=1e-4,
                                                  is_training=True)
        logits, _, _ = training.build_network(network_fn, images)
        loss, _ = losses.classification_loss(logits, tf.constant(labels), CLASSES)
        variables = tf.trainable_variables()
        grads = tf.gradients(loss, variables)
        result = {"onednn": precision.onednn_enabled()}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for name, feed in (("clean", batch), ("perturbed", perturbed)):
                out, loss_value, grad_values = sess.run([logits, loss, grads], {images: feed})
                result[name] = {"logits": out.tolist(), "loss": float(loss_value),
                                "grads": [g.ravel()[:4096].tolist() for g in grad_values]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
