"""CifarNet preprocessing: pad, random crop, flip, brightness/contrast, per-image standardisation."""
import tensorflow.compat.v1 as tf

from images.preprocessing.common import to_grayscale

_PADDING = 4


def preprocess_image(image, output_height, output_width, is_training=False, padding=_PADDING,
                     use_grayscale=False):
    """Preprocesses one CIFAR-style image.

    Args:
      image: ``[H, W, C]`` image, uint8 or float in [0, 255].
      output_height: output rows.
      output_width: output columns.
      is_training: random pad-and-crop, flip, brightness and contrast when True; a central crop
        (or pad) when False.
      padding: zero padding on each side before the random crop.
      use_grayscale: convert to one channel first (so the standardisation holds for it).

    Returns:
      A float32 image ``[output_height, output_width, C]`` with zero mean and unit variance.
    """
    image = to_grayscale(tf.cast(image, tf.float32), use_grayscale)
    channels = image.shape[-1]
    if is_training:
        if padding > 0:
            image = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
        image = tf.image.resize_with_crop_or_pad(
            image, tf.maximum(tf.shape(image)[0], output_height),
            tf.maximum(tf.shape(image)[1], output_width))
        image = tf.image.random_crop(image, [output_height, output_width, channels])
        image = tf.image.random_flip_left_right(image)
        image = tf.image.random_brightness(image, max_delta=63)
        image = tf.image.random_contrast(image, lower=0.2, upper=1.8)
    else:
        image = tf.image.resize_with_crop_or_pad(image, output_height, output_width)
    image = tf.image.per_image_standardization(image)
    return tf.ensure_shape(image, [output_height, output_width, channels])
