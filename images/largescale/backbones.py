"""What ``Entry.set_model`` accepts, and how each kind of backbone becomes the embedding network.

* a registry name (``images.models.model_factory.list_models()``) or one of PLSC's names
  (``ResNet50``, ``ResNet100``, ``ResNet101``, ``ResNet152``: the IR-ResNets of
  :mod:`images.models.irresnet`).  A network that takes ``embedding_size`` (the IR-ResNets, whose
  BN-Dropout-FC-BN head makes the embedding) is the whole embedding network; any other is used in
  feature mode and followed by a linear embedding layer (:mod:`images.largescale.embedding`);
* ``fn(images, is_training) -> features [batch, depth]``, followed by the embedding layer;
* a PLSC model object: a :class:`BaseModel` subclass (or any object with ``build_network``)
  whose ``build_network`` returns the embedding itself, as PLSC's did.  PLSC v0.2 calls it as
  ``build_network(input, is_train)`` with ``input.image`` and ``input.label``; v0.1 as
  ``build_network(input, label, is_train)`` with the image tensor as ``input``.  Both are
  recognised by the parameter names.  Images are ``[batch, H, W, C]`` float32 here (TensorFlow's
  layout; PLSC's were ``[batch, C, H, W]``).
"""
import inspect
import logging

log = logging.getLogger("fastnn")


class BaseModel:
    """Base class of custom models, as PLSC's ``plsc.models.base_model.BaseModel``.

    Subclasses implement ``build_network(self, input, is_train=True)`` and return the embedding
    ``[batch, emb]``: ``input.image`` holds the images (``[batch, H, W, C]`` float32, normalised
    to ``(x - 127.5) / 128`` by the built-in readers), ``input.label`` the labels (None when the
    model is built for inference).  The FC layer and the loss are added by the Entry.
    """

    def build_network(self, input, is_train=True):  # noqa: A002  (PLSC's parameter name)
        """Builds the network on ``input``; returns the embedding."""
        raise NotImplementedError("implement build_network(self, input, is_train) in your "
                                  "subclass; it returns the embedding [batch, emb]")


class InputField:
    """What ``build_network`` receives as ``input``: ``input.image`` and ``input.label``."""

    def __init__(self, image, label=None):
        self.image = image
        self.label = label
        self.feed_list_str = ["image", "label"]


def plsc_name_map():
    """``{PLSC model name: registry name}``."""
    from images.models.irresnet import PLSC_NAMES
    return dict(PLSC_NAMES)


def resolve(model):
    """Checks ``model`` and returns what the config keeps: a registry name, a callable, or a
    model object.  A PLSC ResNet object (``plsc.models.ResNet50()``, with ``registry_name``)
    becomes its registry name.

    Raises:
      ValueError: an unknown name (the message lists the registry's and PLSC's names) or an
        object that is none of the above.
    """
    if isinstance(model, str):
        from images.models import model_factory
        name = plsc_name_map().get(model, model)
        try:
            model_factory.get_model_record(name)
        except ValueError as e:
            raise ValueError("%s; PLSC's names: %s" % (e, ", ".join(sorted(plsc_name_map()))
                                                       )) from None
        return name
    registry_name = getattr(model, "registry_name", None)
    if isinstance(registry_name, str):
        return resolve(registry_name)
    if callable(getattr(model, "build_network", None)):
        return model
    if callable(model):
        return model
    raise ValueError("set_model takes a model name (%s, or a registry name), a BaseModel "
                     "object with build_network(input, is_train), or fn(images, is_training) "
                     "-> features; got %r" % (", ".join(sorted(plsc_name_map())), model))


def makes_embedding(backbone):
    """True when ``backbone`` produces the embedding itself (no extra embedding layer)."""
    if isinstance(backbone, str):
        from images.models import model_factory
        return "embedding_size" in model_factory.get_model_record(backbone).options
    return callable(getattr(backbone, "build_network", None))


def build(images, backbone, emb_size, is_training, weight_decay, labels=None):
    """The embedding ``[batch, emb]`` of a backbone for which :func:`makes_embedding` holds."""
    if isinstance(backbone, str):
        from images.models import model_factory
        network_fn = model_factory.get_network_fn(backbone, num_classes=0,
                                                  weight_decay=weight_decay,
                                                  is_training=is_training,
                                                  embedding_size=emb_size)
        return network_fn(images)[0]
    build_network = backbone.build_network
    params = list(inspect.signature(build_network).parameters)
    if "label" in params:  # PLSC v0.1: build_network(input, label, is_train)
        emb = build_network(images, labels, is_training)
    else:
        emb = build_network(InputField(images, labels), is_training)
    if emb is None or getattr(emb, "shape", None) is None or emb.shape.ndims != 2:
        raise ValueError("%s.build_network must return the embedding [batch, emb], got %r"
                         % (type(backbone).__name__, emb))
    if emb.shape[-1] is None:
        raise ValueError("%s.build_network returned an embedding of unknown width"
                         % type(backbone).__name__)
    return emb


def display_name(backbone):
    """A name for logs and checkpoint metadata."""
    if isinstance(backbone, str):
        return backbone
    if callable(getattr(backbone, "build_network", None)):
        return type(backbone).__name__
    return getattr(backbone, "__name__", "custom backbone")
