"""Public face of the network registry: ``get_network_fn``, ``list_models``, ``get_model_record``.

Importing this module imports every family package, which registers its networks; every record's
network is a TF-slim function of :mod:`images.models.nets` (one implementation per network).
Slim code keeps its own factory, :mod:`images.models.nets.nets_factory`.
"""
import functools

import tf_slim as slim

from images.models import registry
from images.models.common import features_from, graph_building
from images.models.registry import ModelRecord, get_record, list_models  # noqa: F401  (re-export)

# Each import registers that family's records.
from images.models import lenet as _lenet  # noqa: F401,E402
from images.models import cifarnet as _cifarnet  # noqa: F401,E402
from images.models import resnet as _resnet  # noqa: F401,E402
from images.models import alexnet as _alexnet  # noqa: F401,E402
from images.models import overfeat as _overfeat  # noqa: F401,E402
from images.models import vgg as _vgg  # noqa: F401,E402
from images.models import inception as _inception  # noqa: F401,E402
from images.models import mobilenet as _mobilenet  # noqa: F401,E402
from images.models import nasnet as _nasnet  # noqa: F401,E402
from images.models import irresnet as _irresnet  # noqa: F401,E402

get_model_record = get_record


def get_network_fn(name, num_classes, weight_decay=0.0, is_training=False, **net_kwargs):
    """Returns ``fn(images, **kwargs) -> (net, end_points)`` for the network ``name``.

    The network is the slim function of :mod:`images.models.nets` in its arg scope.  With a
    classifier, ``net`` and ``end_points`` are slim's own (logits, ``AuxLogits`` in training
    where the network has it).  With ``num_classes`` 0 or None the network builds no classifier
    and ``net`` is its pre-logits output as ``[batch, depth]``
    (:func:`images.models.common.features_from`); ``end_points`` stay slim's.

    Args:
      name: a registered model name (see :func:`list_models`).
      num_classes: classifier width; 0 or None gives ``[batch, depth]`` features.
      weight_decay: L2 coefficient the network's arg_scope puts on its weights.
      is_training: training mode (dropout, batch-norm statistics, auxiliary heads).
      **net_kwargs: options of the slim function (``dropout_keep_prob``, ``global_pool``,
        ``spatial_squeeze``, ...); options it does not have are rejected.

    Returns:
      The function, with ``default_image_size`` and ``record`` attributes.

    Raises:
      ValueError: unknown name (the message lists the valid ones) or unsupported option.
    """
    record = get_record(name)
    _check_kwargs(record, net_kwargs)

    @functools.wraps(record.network_fn)
    def network_fn(images, **kwargs):
        _check_kwargs(record, kwargs)
        options = dict(net_kwargs, **kwargs)
        with graph_building(), slim.arg_scope(record.arg_scope_fn(
                weight_decay=weight_decay)):
            net, end_points = record.network_fn(images, num_classes=num_classes or 0,
                                                is_training=is_training, **options)
        if not num_classes:
            net = features_from(net)
        return net, end_points

    network_fn.default_image_size = record.default_image_size
    network_fn.record = record
    return network_fn


def _check_kwargs(record, kwargs):
    unknown = sorted(set(kwargs) - set(record.options))
    if unknown:
        raise ValueError("model %r does not take %s; it takes: %s"
                         % (record.name, ", ".join(unknown), ", ".join(record.options)))
