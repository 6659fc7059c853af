"""Small pieces every family shares: the classifier end points and the feature-mode output.

The registry promises the same contract for every network: with a classifier, ``end_points`` holds
``Logits`` and ``Predictions``; with ``num_classes`` 0 or None the network returns pooled features
``[batch, depth]``.  Networks that ``tf_slim.nets`` builds keep their own end points besides these.
"""
import contextlib

import tensorflow as tf2
import tensorflow.compat.v1 as tf
import tf_slim as slim


@contextlib.contextmanager
def graph_building():
    """Variables and tensors compare and hash by identity inside (TF1 graph semantics).

    tf-keras' legacy ``add_weight``, which every tf-slim layer goes through, makes a set of all
    the graph's variables and searches the list of trainable ones for each weight it adds: building
    a network is quadratic in its variable count, and under TF2's tensor equality each hash or
    comparison also asks whether we run eagerly (an ``init_scope``).  In graph mode ``==`` and
    ``hash`` mean identity anyway; switching TF2's equality off while a network is built only
    skips those checks (resnet_v2_200 builds in a third of the time).  The previous setting is
    restored on exit, so eager code elsewhere keeps element-wise ``==``.
    """
    previous = tf2.Tensor._USE_EQUALITY  # pylint: disable=protected-access
    tf.disable_tensor_equality()
    try:
        yield
    finally:
        if previous:
            tf.enable_tensor_equality()


def add_classifier_end_points(logits, end_points, prediction_fn=slim.softmax):
    """Records ``logits`` under ``Logits`` and their softmax under ``Predictions``."""
    end_points["Logits"] = logits
    if "Predictions" not in end_points:
        end_points["Predictions"] = prediction_fn(logits, scope="Predictions")
    return logits, end_points


def pooled_features(net, name="features"):
    """``[batch, depth]`` from a ``[batch, height, width, depth]`` map (mean over the map).

    At the default image size the maps that reach here are already 1x1, so the mean is exact
    there and a global average at other sizes.
    """
    if net.shape.ndims == 2:
        return net
    return tf.reduce_mean(net, [1, 2], name=name)


def drop_classifier_variables(created_before, scope_fragment):
    """Removes the variables (and their weight-decay terms) of a classifier we do not use.

    ``tf_slim.nets``' AlexNet, OverFeat and VGG (tf-slim 1.1.0) always build their ``fc8``
    classifier.  Feature mode builds them with one class and then takes ``fc8``'s variables out
    of every collection, so they are neither trained, saved, initialised nor regularised: the
    graph then holds exactly the variables of the feature extractor, as slim's newer versions
    give with ``num_classes=0``.

    Args:
      created_before: names of the global variables that existed before the network was built
        (see :func:`variable_names`).
      scope_fragment: e.g. ``'/fc8/'``; variables created since whose names contain it go.
    """
    doomed = {name for name in variable_names() - set(created_before) if scope_fragment in name}
    if not doomed:
        raise ValueError("no variable matching %r was created" % scope_fragment)
    for key in (tf.GraphKeys.GLOBAL_VARIABLES, tf.GraphKeys.TRAINABLE_VARIABLES,
                tf.GraphKeys.MODEL_VARIABLES):
        ref = tf.get_collection_ref(key)
        ref[:] = [v for v in ref if v.op.name not in doomed]
    ref = tf.get_collection_ref(tf.GraphKeys.REGULARIZATION_LOSSES)
    ref[:] = [t for t in ref if scope_fragment not in t.name]


def variable_names():
    """Names of the graph's global variables (variables themselves are not hashable in TF2)."""
    return {v.op.name for v in tf.global_variables()}


def slim_fc8_network(builder, name, default_image_size):
    """Adapts a ``tf_slim.nets`` builder whose classifier is the 1x1 convolution ``fc8``.

    AlexNet v2, OverFeat and the VGGs of tf-slim 1.1.0 take ``num_classes``,
    ``is_training``, ``dropout_keep_prob`` and ``spatial_squeeze``.  With ``num_classes`` 0 or
    None this returns the ``fc7`` activations (before their dropout) pooled to
    ``[batch, 4096]``.
    """
    def network_fn(images, num_classes, is_training=False, dropout_keep_prob=0.5,
                   spatial_squeeze=True):
        if num_classes:
            logits, end_points = builder(
                images, num_classes=num_classes, is_training=is_training,
                dropout_keep_prob=dropout_keep_prob, spatial_squeeze=spatial_squeeze)
            return add_classifier_end_points(logits, end_points)
        before = variable_names()
        _, end_points = builder(images, num_classes=1, is_training=is_training,
                                dropout_keep_prob=dropout_keep_prob, spatial_squeeze=False)
        drop_classifier_variables(before, "/fc8/")
        end_points = {k: v for k, v in end_points.items() if "/fc8" not in k}
        fc7 = [v for k, v in end_points.items() if k.endswith("/fc7")]
        features = end_points["global_pool"] = pooled_features(fc7[0])
        return features, end_points

    network_fn.__name__ = name
    network_fn.default_image_size = default_image_size
    return network_fn
