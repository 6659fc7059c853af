"""Random ops keyed by a tensor, so a resumed run draws exactly what an uninterrupted one drew.

A stateful random op (``tf.random.uniform``, dropout, ``tf.image.random_flip_left_right``, ...)
draws from a generator that lives in the process: a run restarted from a checkpoint starts that
generator again and repeats the draws of its first steps.  Inside :func:`keyed_random_ops` every
stateful random op the code builds is replaced, as it is built, by its stateless twin
(``StatelessRandomUniform`` ...) whose seed is a key tensor folded with the op's number.  The key
is made of the run's seed and the position in the run (the global step for dropout, the element's
index in the input stream for augmentation), so each draw follows from the seed and the step, not
from the process.  Preprocessing and network code stay as they are (slim's nets included).

Variable initialisers are left alone: they run once, before the first checkpoint.
"""
import contextlib

import tensorflow.compat.v1 as tf
from tensorflow.python.framework import op_callbacks  # the hook tf.debugging uses to wrap ops
from tensorflow.python.ops import gen_image_ops, gen_stateless_random_ops

# Salts keep the streams of different uses apart for one seed.
STEP_SALT = 0x5EED0001
ELEMENT_SALT = 0x5EED0002
SHUFFLE_SALT = 0x5EED0003


def _dtype(op, name):
    return tf.as_dtype(op.get_attr(name))


def _uniform(inputs, op, seed):
    return [gen_stateless_random_ops.stateless_random_uniform(inputs[0], seed,
                                                              dtype=_dtype(op, "dtype"))]


def _normal(inputs, op, seed):
    return [gen_stateless_random_ops.stateless_random_normal(inputs[0], seed,
                                                             dtype=_dtype(op, "dtype"))]


def _truncated(inputs, op, seed):
    return [gen_stateless_random_ops.stateless_truncated_normal(inputs[0], seed,
                                                                dtype=_dtype(op, "dtype"))]


def _uniform_int(inputs, op, seed):
    shape, minval, maxval = inputs
    return [gen_stateless_random_ops.stateless_random_uniform_int(shape, seed, minval, maxval)]


def _multinomial(inputs, op, seed):
    logits, num_samples = inputs
    return [gen_stateless_random_ops.stateless_multinomial(
        logits, num_samples, seed, output_dtype=_dtype(op, "output_dtype"))]


def _shuffle(inputs, op, seed):
    value = inputs[0]
    keys = gen_stateless_random_ops.stateless_random_uniform(tf.shape(value)[:1], seed)
    return [tf.gather(value, tf.argsort(keys))]


def _box_attrs(op):
    return {name: op.get_attr(name) for name in (
        "aspect_ratio_range", "area_range", "max_attempts", "use_image_if_no_bounding_boxes")}


def _distorted_box_v2(inputs, op, seed):
    image_size, boxes, min_covered = inputs
    return list(gen_image_ops.stateless_sample_distorted_bounding_box(
        image_size, boxes, min_covered, seed, **_box_attrs(op)))


def _distorted_box(inputs, op, seed):
    image_size, boxes = inputs
    return list(gen_image_ops.stateless_sample_distorted_bounding_box(
        image_size, boxes, op.get_attr("min_object_covered"), seed, **_box_attrs(op)))


TWINS = {
    "RandomUniform": _uniform,
    "RandomStandardNormal": _normal,
    "TruncatedNormal": _truncated,
    "RandomUniformInt": _uniform_int,
    "Multinomial": _multinomial,
    "RandomShuffle": _shuffle,
    "SampleDistortedBoundingBoxV2": _distorted_box_v2,
    "SampleDistortedBoundingBox": _distorted_box,
}
# Stateful random ops without a stateless twin here: building one in the scope is an error
# rather than a silently unreproducible draw.
UNKEYABLE = ("RandomGamma", "RandomPoisson", "RandomPoissonV2", "ParameterizedTruncatedNormal",
             "RandomCrop")


def fold(key, *values):
    """``key`` (int64 ``[2]``) folded with each of ``values`` in turn: a new key."""
    key = tf.convert_to_tensor(key, tf.int64)
    for v in values:
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(v, tf.int64))
    return key


def base_key(seed, salt, rank=0):
    """The key of one use (``salt``) of the run's ``seed`` on worker ``rank``."""
    return fold(tf.constant([int(seed), int(salt)], tf.int64), rank)


class UnkeyableRandomOpError(ValueError):
    """A stateful random op with no stateless twin was built inside :func:`keyed_random_ops`."""


@contextlib.contextmanager
def keyed_random_ops(key):
    """Within the block, stateful random ops are built as stateless ops seeded from ``key``.

    The n-th random op built in the block gets the seed ``fold(key, n)``, so the same code built
    twice draws the same numbers for the same key.  Ops under a variable's ``Initializer`` scope
    keep their stateful form.  Works in the default graph and in functions traced inside the
    block (``tf.data`` map functions, ``tf.cond`` branches).

    Args:
      key: an int64 ``[2]`` tensor (or a callable returning one, called on first use in the
        graph being built).

    Raises:
      UnkeyableRandomOpError: a stateful random op without a stateless twin was built.
    """
    counter = [0]

    def callback(op_type, inputs, attrs, outputs, op_name=None, graph=None):
        if op_type not in TWINS and op_type not in UNKEYABLE:
            return None
        if "Initializer/" in (op_name or ""):
            return None
        if op_type in UNKEYABLE:
            raise UnkeyableRandomOpError(
                "%s (%s) is a random op without a stateless form: its draws cannot follow the "
                "seed and step, so exact resume cannot hold. Build it outside "
                "keyed_random_ops, or run without --random_seed" % (op_name, op_type))
        op = outputs[0].op
        k = key() if callable(key) else key
        seed = fold(k, counter[0])
        counter[0] += 1
        with tf.name_scope(op.name + "_keyed/"):
            replaced = TWINS[op_type](list(inputs), op, seed)
        for new, old in zip(replaced, outputs):
            new.set_shape(old.shape)
        return replaced

    op_callbacks.add_op_callback(callback)
    try:
        yield counter
    finally:
        op_callbacks.remove_op_callback(callback)
