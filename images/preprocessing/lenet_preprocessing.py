"""LeNet preprocessing: resize to the input size and scale pixels to [-1, 1) (no augmentation)."""
import tensorflow.compat.v1 as tf

from images.preprocessing.common import to_grayscale


def preprocess_image(image, output_height, output_width, is_training=False, use_grayscale=False):
    """Resizes ``image`` to ``output_height`` x ``output_width`` and maps [0, 255] to [-1, 1).

    TF-slim crops or pads MNIST's 28x28 images, which are already the right size; resizing is the
    same for them and also serves smaller inputs such as the 8x8 digits.
    ``is_training`` is accepted for the common signature; LeNet uses no augmentation.
    """
    del is_training
    image = to_grayscale(tf.cast(image, tf.float32), use_grayscale)
    image = tf.image.resize(image, [output_height, output_width],
                            method=tf.image.ResizeMethod.BILINEAR)
    image = (image - 128.0) / 128.0
    return tf.ensure_shape(image, [output_height, output_width, None])
