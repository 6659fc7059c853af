"""Forward multiply-adds of a registry network, from TensorFlow's per-op FLOP statistics.

The count is what papers quote as "mult-adds": the convolutions (full and depthwise) and matrix
products on the path from the input to the logits, for one image, in inference mode.  Auxiliary
heads, batch norm, activations and pooling are left out.  ``ModelRecord.flops`` holds this figure
at the default size and class count; tests recount it from the graph.
"""
import tensorflow.compat.v1 as tf
from tensorflow.python.framework import ops as ops_lib

# Op types whose registered FLOP count (2 per multiply-add) makes up the figure.
MULTIPLY_ADD_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul")


def multiply_adds_to(tensor):
    """Multiply-adds (``MULTIPLY_ADD_OPS`` FLOPs / 2) of the ops ``tensor`` depends on.

    Each op is costed by the FLOP statistics TensorFlow registers for its type (the figures the
    profiler reports), walking back from ``tensor`` only: the profiler itself visits the whole
    graph and takes minutes on a NASNet.  ``tensor``'s graph needs static shapes on that path
    (a fixed batch, e.g. 1).

    Raises:
      ValueError: an op on the path has a shape unknown when the graph is built.
    """
    graph = tensor.graph
    flops, seen, pending = 0, set(), [tensor.op]
    while pending:
        op = pending.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        if op.type in MULTIPLY_ADD_OPS:
            try:
                value = ops_lib.get_stats_for_node_def(graph, op.node_def, "flops").value
            except ValueError as e:
                raise ValueError("cannot count the FLOPs of %s: %s (build the graph with a "
                                 "fixed batch and image size)" % (op.name, e)) from e
            if value is None:
                raise ValueError("no FLOP count for %s (%s)" % (op.name, op.type))
            flops += value
        pending.extend(t.op for t in op.inputs)
        pending.extend(op.control_inputs)
    return flops / 2.0


def profiler_multiply_adds_to(tensor):
    """The same count through ``tf.profiler`` (slow on large graphs; a cross-check)."""
    graph_def = tf.graph_util.extract_sub_graph(tensor.graph.as_graph_def(), [tensor.op.name])
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        options = tf.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        root = tf.profiler.profile(graph, cmd="scope", options=options)
        flops = 0
        pending = [root]
        while pending:
            node = pending.pop()
            pending.extend(node.children)
            if node.float_ops and _op_type(graph, node.name) in MULTIPLY_ADD_OPS:
                flops += node.float_ops
    return flops / 2.0


def _op_type(graph, name):
    try:
        return graph.get_operation_by_name(name).type
    except KeyError:  # the profiler's root and pure name scopes
        return None


def count_multiply_adds(name, image_size=None, num_classes=None, channels=3):
    """Forward multiply-adds of one image through the registry network ``name``.

    Args:
      name: registry name.
      image_size: input side; defaults to the network's default size.
      num_classes: classifier width; defaults to the published checkpoint's (1000/1001, 10).
      channels: input channels.

    Returns:
      ``(multiply_adds, logits_shape)``.
    """
    from images.models import model_factory
    record = model_factory.get_model_record(name)
    size = image_size or record.default_image_size
    classes = num_classes or record.default_num_classes
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1, size, size, channels], name="images")
        network_fn = model_factory.get_network_fn(name, classes, is_training=False)
        logits, _ = network_fn(images)
        return multiply_adds_to(logits), logits.shape.as_list()
