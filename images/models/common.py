"""What the registry adds around the slim network functions: fast graph building and the
feature-mode adaptation.

The registry's internal convention (the trainer's, the evaluator's, the large-scale backbone's):
with ``num_classes`` 0 or None a network gives pooled features ``[batch, depth]``.  The slim
functions themselves return slim's own pre-logits output (``fc7`` ``[b, 1, 1, 4096]``,
``AvgPool_1a`` ``[b, 1, 1, 1024]``, NASNet's ``[b, depth]`` ...); :func:`features_from` turns
any of them into the registry's form.
"""
import contextlib

import tensorflow as tf2
import tensorflow.compat.v1 as tf


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


def features_from(net, name="features"):
    """``[batch, depth]`` from a network's pre-logits output.

    A rank-2 output is returned as it is; a ``[batch, 1, 1, depth]`` one is squeezed; a larger
    map (an input bigger than the network's window, no global pooling) is averaged over its
    height and width.
    """
    if net.shape.ndims == 2:
        return net
    if net.shape.ndims != 4:
        raise ValueError("expected the network's pre-logits output to be of rank 2 or 4, got %s"
                         % net.shape)
    if net.shape[1] == 1 and net.shape[2] == 1:
        return tf.squeeze(net, [1, 2], name=name)
    return tf.reduce_mean(net, [1, 2], name=name)
