"""Public face of the network registry: ``get_network_fn``, ``list_models``, ``get_model_record``.

Importing this module imports every family package, which registers its networks.
"""
import functools

import tf_slim as slim

from images.models import registry
from images.models.common import graph_building
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
    """Returns ``fn(images, **kwargs) -> (logits, end_points)`` for the network ``name``.

    Args:
      name: a registered model name (see :func:`list_models`).
      num_classes: classifier width; 0 or None returns pooled features ``[batch, depth]``.
      weight_decay: L2 coefficient the network's arg_scope puts on its weights.
      is_training: training mode (dropout, batch-norm statistics).
      **net_kwargs: network options such as ``dropout_keep_prob``, ``global_pool`` or
        ``spatial_squeeze``; options the network does not have are rejected.

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
            return record.network_fn(images, num_classes, is_training=is_training, **options)

    network_fn.default_image_size = record.default_image_size
    network_fn.record = record
    return network_fn


def _check_kwargs(record, kwargs):
    unknown = sorted(set(kwargs) - set(record.supported_kwargs))
    if unknown:
        raise ValueError("model %r does not take %s; it takes: %s"
                         % (record.name, ", ".join(unknown), ", ".join(record.supported_kwargs)))
