"""The network registry: one :class:`ModelRecord` per model name.

Family packages call :func:`register` at import time; :mod:`images.models.model_factory` imports
every family and is the public entry point.
"""
import dataclasses
import fnmatch
import inspect
from typing import Callable, Dict, List, Optional


@dataclasses.dataclass(frozen=True)
class ModelRecord:
    """Everything the trainer needs to know about one network.

    Attributes:
      name: registry name, e.g. ``resnet_v1_50``.
      network_fn: the TF-slim network function of :mod:`images.models.nets`
        (``fn(images, num_classes, is_training=..., **kwargs) -> (net, end_points)``, slim's
        defaults and end points); :func:`images.models.model_factory.get_network_fn` adapts its
        feature mode to ``[batch, depth]``.
      arg_scope_fn: ``fn(weight_decay=...) -> arg_scope`` with the network's hyper-parameters.
      default_image_size: input side length the network was designed for.
      preprocessing_name: key into the preprocessing registry.
      has_aux_logits: whether ``end_points`` carries ``AuxLogits`` in training.
      flops: forward multiply-adds per image at ``default_image_size`` with the default classifier
        (the figure papers quote); training costs about 3x this in multiply-adds.
      default_num_classes: class count of the published checkpoint (1000 or 1001).
      family: folder under ``images/models``.
      heavy: networks slow to build or run, which tests may run at a reduced input size.
      min_image_size: smallest input side the architecture accepts in training (auxiliary
        heads included).
      supported_kwargs: the optional keyword arguments ``network_fn`` accepts; None takes them
        from its signature (every parameter but the images, ``num_classes`` and
        ``is_training``).
    """
    name: str
    network_fn: Callable
    arg_scope_fn: Callable
    default_image_size: int
    preprocessing_name: str
    has_aux_logits: bool = False
    flops: float = 0.0
    default_num_classes: int = 1000
    family: str = ""
    heavy: bool = False
    min_image_size: Optional[int] = None
    supported_kwargs: Optional[tuple] = None

    @property
    def options(self):
        """The keyword arguments ``network_fn`` takes besides images, classes and mode."""
        if self.supported_kwargs is not None:
            return tuple(self.supported_kwargs)
        parameters = list(inspect.signature(self.network_fn).parameters.values())[1:]
        return tuple(p.name for p in parameters
                     if p.name not in ("num_classes", "is_training")
                     and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


_REGISTRY: Dict[str, ModelRecord] = {}


def register(record: ModelRecord) -> ModelRecord:
    """Adds ``record`` to the registry; a second record under the same name is an error."""
    if record.name in _REGISTRY:
        raise ValueError("model %r is registered twice" % record.name)
    _REGISTRY[record.name] = record
    return record


def get_record(name: str) -> ModelRecord:
    """Returns the record of ``name``.

    Raises:
      ValueError: the name is unknown; the message lists every valid name.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError("unknown model_name %r; valid names: %s"
                         % (name, ", ".join(sorted(_REGISTRY)))) from None


def list_models(pattern: str = "*") -> List[str]:
    """Sorted registered names matching the shell-style ``pattern`` (e.g. ``'resnet_v1_*'``)."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))
