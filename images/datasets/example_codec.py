"""The TFRecord feature layout shared by every converter and reader.

Keys are TF-slim's: ``image/encoded``, ``image/format``, ``image/class/label``, ``image/height``,
``image/width``, and for ImageNet-style records the normalised bounding boxes
``image/object/bbox/{ymin,xmin,ymax,xmax}``.
"""
import tensorflow.compat.v1 as tf


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def _floats(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def image_to_tfexample(encoded, image_format, height, width, label, bboxes=None):
    """Builds one ``tf.train.Example``.

    Args:
      encoded: the encoded image bytes (PNG or JPEG).
      image_format: ``b'png'`` or ``b'jpeg'`` (str accepted).
      height: image rows.
      width: image columns.
      label: integer class id.
      bboxes: optional list of ``(ymin, xmin, ymax, xmax)`` in [0, 1].
    """
    if isinstance(image_format, str):
        image_format = image_format.encode()
    feature = {
        "image/encoded": _bytes(encoded),
        "image/format": _bytes(image_format),
        "image/class/label": _int64(label),
        "image/height": _int64(height),
        "image/width": _int64(width),
    }
    if bboxes:
        for i, key in enumerate(("ymin", "xmin", "ymax", "xmax")):
            feature["image/object/bbox/" + key] = _floats(b[i] for b in bboxes)
    return tf.train.Example(features=tf.train.Features(feature=feature))


FEATURES = {
    "image/encoded": tf.io.FixedLenFeature((), tf.string, default_value=""),
    "image/format": tf.io.FixedLenFeature((), tf.string, default_value="png"),
    "image/class/label": tf.io.FixedLenFeature((), tf.int64, default_value=-1),
}

BBOX_FEATURES = {
    "image/object/bbox/" + k: tf.io.VarLenFeature(tf.float32)
    for k in ("ymin", "xmin", "ymax", "xmax")
}


def parse_example(serialized, channels=3, with_bbox=False):
    """Parses one serialized example into ``(image uint8 [H, W, channels], label int64[, bbox])``.

    ``bbox`` is ``[1, N, 4]`` normalised ``(ymin, xmin, ymax, xmax)``, as
    ``tf.image.sample_distorted_bounding_box`` expects; N may be 0.
    """
    spec = dict(FEATURES)
    if with_bbox:
        spec.update(BBOX_FEATURES)
    features = tf.io.parse_single_example(serialized, spec)
    image = tf.io.decode_image(features["image/encoded"], channels=channels,
                               expand_animations=False)
    image = tf.ensure_shape(image, [None, None, channels])
    label = features["image/class/label"]
    if not with_bbox:
        return image, label
    coords = [tf.sparse.to_dense(features["image/object/bbox/" + k])
              for k in ("ymin", "xmin", "ymax", "xmax")]
    bbox = tf.expand_dims(tf.stack(coords, axis=1), 0)
    return image, label, bbox
