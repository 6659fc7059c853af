"""VGG/ResNet preprocessing: aspect-preserving resize, crop, flip, ImageNet mean subtraction."""
import tensorflow.compat.v1 as tf

from images.preprocessing.common import (central_crop_to, smallest_side_resize, to_grayscale,
                                         to_rgb)

MEANS = (123.68, 116.78, 103.94)
RESIZE_SIDE_MIN = 256
RESIZE_SIDE_MAX = 512


def preprocess_image(image, output_height, output_width, is_training=False,
                     resize_side_min=RESIZE_SIDE_MIN, resize_side_max=RESIZE_SIDE_MAX,
                     use_grayscale=False):
    """Preprocesses one image as VGG and ResNet were trained.

    Training: the smaller side is resized to a random length in ``[resize_side_min,
    resize_side_max]``, a random ``output_height`` x ``output_width`` window is cropped and flipped
    at random.  Evaluation: the smaller side is resized to ``resize_side_min`` and the central
    window is cropped.  Both subtract the ImageNet channel means.  The minimum side is raised to
    the output size when the output is larger than 256.

    With ``use_grayscale`` the result is the grey image minus the grey mean (one channel).

    Returns:
      float32 ``[output_height, output_width, 3 or 1]``.
    """
    image = to_rgb(tf.cast(image, tf.float32))
    side_min = max(resize_side_min, output_height, output_width)
    if is_training:
        side_max = max(resize_side_max, side_min)
        side = tf.random.uniform([], minval=side_min, maxval=side_max + 1, dtype=tf.int32)
        image = smallest_side_resize(image, side)
        image = tf.image.random_crop(image, [output_height, output_width, 3])
        image = tf.image.random_flip_left_right(image)
    else:
        image = smallest_side_resize(image, side_min)
        image = central_crop_to(image, output_height, output_width)
    image = to_grayscale(image - tf.constant(MEANS, dtype=tf.float32), use_grayscale)
    return tf.ensure_shape(image, [output_height, output_width, 1 if use_grayscale else 3])
