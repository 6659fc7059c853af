"""Inception preprocessing (used by inception, mobilenet, nasnet, alexnet, overfeat).

Training: a random crop around the bounding box (area and aspect-ratio distortion), a resize with a
random interpolation method, a random flip and random colour distortion.  Evaluation: a central crop
of 87.5% of the image, a bilinear resize.  Both return pixels in [-1, 1].
"""
import tensorflow.compat.v1 as tf

from images.preprocessing.common import resize_bilinear, to_grayscale, to_rgb

_RESIZE_METHODS = (
    tf.image.ResizeMethod.BILINEAR, tf.image.ResizeMethod.NEAREST_NEIGHBOR,
    tf.image.ResizeMethod.BICUBIC, tf.image.ResizeMethod.AREA)


def distort_color(image, color_ordering=0, fast_mode=True):
    """Random colour distortion of ``image`` in [0, 1] in one of TF-slim's orders.

    Fast mode changes brightness and saturation (orders 0, 1); otherwise brightness,
    saturation, hue and contrast in one of four orders (0..3).
    """
    def brightness(x):
        return tf.image.random_brightness(x, max_delta=32.0 / 255.0)

    def saturation(x):
        return tf.image.random_saturation(x, lower=0.5, upper=1.5)

    def hue(x):
        return tf.image.random_hue(x, max_delta=0.2)

    def contrast(x):
        return tf.image.random_contrast(x, lower=0.5, upper=1.5)

    if fast_mode:
        orders = ((brightness, saturation), (saturation, brightness))
    else:
        orders = ((brightness, saturation, hue, contrast), (saturation, brightness, contrast, hue),
                  (contrast, hue, brightness, saturation), (hue, saturation, contrast, brightness))
    if not 0 <= color_ordering < len(orders):
        raise ValueError("color_ordering must be in [0, %d), got %d"
                         % (len(orders), color_ordering))
    for op in orders[color_ordering]:
        image = op(image)
    return tf.clip_by_value(image, 0.0, 1.0)


def distorted_bounding_box_crop(image, bbox, min_object_covered=0.1,
                                aspect_ratio_range=(0.75, 1.33), area_range=(0.05, 1.0),
                                max_attempts=100):
    """Crops a random window that covers at least ``min_object_covered`` of one box of ``bbox``."""
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=bbox, min_object_covered=min_object_covered,
        aspect_ratio_range=aspect_ratio_range, area_range=area_range,
        max_attempts=max_attempts, use_image_if_no_bounding_boxes=True)
    return tf.slice(image, begin, size)


def _random_choice(n, fn):
    """Applies ``fn(x, i)`` for a random ``i`` in [0, n) via a case over static branches."""
    if n == 1:
        return lambda x: fn(x, 0)
    pick = tf.random.uniform([], maxval=n, dtype=tf.int32)
    return lambda x: tf.switch_case(pick, [lambda i=i: fn(x, i) for i in range(n)])


def preprocess_for_train(image, height, width, bbox=None, fast_mode=True, use_grayscale=False):
    """Training transform; ``image`` uint8 or float, ``bbox`` ``[1, N, 4]`` normalised or None.

    As TF-slim: a distorted crop, a resize (bilinear in fast mode, else one of four methods
    at random), a random flip, colour distortion (in fast mode always brightness then
    saturation, else one of four random orders), [-1, 1].
    """
    image = tf.image.convert_image_dtype(to_rgb(image), tf.float32)
    if bbox is None:
        bbox = tf.constant([0.0, 0.0, 1.0, 1.0], dtype=tf.float32, shape=[1, 1, 4])
    image = distorted_bounding_box_crop(image, bbox)
    image.set_shape([None, None, 3])
    num_methods = 1 if fast_mode else len(_RESIZE_METHODS)
    image = _random_choice(num_methods, lambda x, i: tf.image.resize_images(
        x, [height, width], method=_RESIZE_METHODS[i]))(image)
    image = tf.image.random_flip_left_right(image)
    num_orders = 1 if fast_mode else 4
    image = _random_choice(num_orders, lambda x, i: distort_color(x, i, fast_mode))(image)
    image = to_grayscale(image, use_grayscale)
    image = (image - 0.5) * 2.0
    return tf.ensure_shape(image, [height, width, 1 if use_grayscale else 3])


def preprocess_for_eval(image, height, width, central_fraction=0.875, use_grayscale=False):
    """Evaluation transform: central crop of ``central_fraction``, bilinear resize, [-1, 1]."""
    image = tf.image.convert_image_dtype(to_rgb(image), tf.float32)
    image = to_grayscale(image, use_grayscale)
    if central_fraction:
        image = tf.image.central_crop(image, central_fraction=central_fraction)
    image = resize_bilinear(image, height, width)
    image = (image - 0.5) * 2.0
    return tf.ensure_shape(image, [height, width, 1 if use_grayscale else 3])


def preprocess_image(image, output_height, output_width, is_training=False, bbox=None,
                     fast_mode=True, use_grayscale=False):
    """Dispatches to :func:`preprocess_for_train` or :func:`preprocess_for_eval`."""
    if is_training:
        return preprocess_for_train(image, output_height, output_width, bbox, fast_mode,
                                    use_grayscale)
    return preprocess_for_eval(image, output_height, output_width, use_grayscale=use_grayscale)
