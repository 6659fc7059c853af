"""Small image helpers shared by the preprocessing functions."""
import tensorflow.compat.v1 as tf


def to_rgb(image):
    """A one-channel image is repeated to three channels; three channels pass through."""
    if image.shape[-1] == 1:
        return tf.image.grayscale_to_rgb(image)
    return image


def to_grayscale(image, use_grayscale):
    """One channel when ``use_grayscale`` (and the image has three), else ``image`` unchanged."""
    if use_grayscale and image.shape[-1] == 3:
        return tf.image.rgb_to_grayscale(image)
    return image


def resize_bilinear(image, height, width):
    """Bilinear resize of one image with TF-slim's kernel (``align_corners=False`` and no
    half-pixel centres: the TF1 ``resize_bilinear`` the published checkpoints were trained and
    evaluated with; TF2's ``tf.image.resize`` samples half a pixel apart)."""
    resized = tf.image.resize_bilinear(tf.expand_dims(image, 0), [height, width],
                                       align_corners=False)
    return resized[0]


def smallest_side_resize(image, smallest_side):
    """Resizes so the smaller side equals ``smallest_side`` (a scalar tensor), keeping the aspect."""
    smallest_side = tf.cast(smallest_side, tf.float32)
    shape = tf.shape(image)
    height = tf.cast(shape[0], tf.float32)
    width = tf.cast(shape[1], tf.float32)
    scale = smallest_side / tf.minimum(height, width)
    new_h = tf.cast(tf.math.round(height * scale), tf.int32)
    new_w = tf.cast(tf.math.round(width * scale), tf.int32)
    resized = resize_bilinear(image, new_h, new_w)
    return tf.ensure_shape(resized, [None, None, image.shape[-1]])


def central_crop_to(image, height, width):
    """Crops the centre ``height`` x ``width`` window (the image must be at least that big)."""
    shape = tf.shape(image)
    top = (shape[0] - height) // 2
    left = (shape[1] - width) // 2
    crop = tf.slice(image, tf.stack([top, left, 0]), tf.stack([height, width, -1]))
    return tf.ensure_shape(crop, [height, width, image.shape[-1]])
