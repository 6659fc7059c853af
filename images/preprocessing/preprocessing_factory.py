"""The preprocessing registry: name -> ``fn(image, height, width, is_training, ...)``.

Every function takes one decoded ``uint8`` (or float) image ``[H, W, C]`` and returns a float32
image ``[height, width, C']``; training mode may be random, evaluation mode is deterministic.

Four preprocessings exist (cifarnet, inception, lenet, vgg).  As in TF-slim and FastNN, a network's
name also names its preprocessing (``--preprocessing_name=resnet_v1_50`` is vgg's): FastNN's map
has 33 names, ``nasnet_cifar``, which FastNN lacked, takes cifarnet's, and the IR-ResNets
inception's.
"""
import fnmatch
from typing import Callable, Dict, List

from images.preprocessing import (cifarnet_preprocessing, inception_preprocessing,
                                  lenet_preprocessing, vgg_preprocessing)

_REGISTRY: Dict[str, Callable] = {
    "cifarnet": cifarnet_preprocessing.preprocess_image,
    "inception": inception_preprocessing.preprocess_image,
    "lenet": lenet_preprocessing.preprocess_image,
    "vgg": vgg_preprocessing.preprocess_image,
}

# Network name -> the preprocessing it names (FastNN's preprocessing_fn_map, plus nasnet_cifar).
_ALIASES: Dict[str, str] = {
    "alexnet_v2": "inception", "overfeat": "inception",
    "inception_v1": "inception", "inception_v2": "inception", "inception_v3": "inception",
    "inception_v4": "inception", "inception_resnet_v2": "inception",
    "mobilenet_v1": "inception", "mobilenet_v1_075": "inception",
    "mobilenet_v1_050": "inception", "mobilenet_v1_025": "inception",
    "mobilenet_v2": "inception", "mobilenet_v2_035": "inception", "mobilenet_v2_140": "inception",
    "nasnet_mobile": "inception", "nasnet_large": "inception",
    "pnasnet_mobile": "inception", "pnasnet_large": "inception",
    "nasnet_cifar": "cifarnet",
    "resnet_v1_50": "vgg", "resnet_v1_101": "vgg", "resnet_v1_152": "vgg", "resnet_v1_200": "vgg",
    "resnet_v2_50": "vgg", "resnet_v2_101": "vgg", "resnet_v2_152": "vgg", "resnet_v2_200": "vgg",
    "vgg_a": "vgg", "vgg_16": "vgg", "vgg_19": "vgg",
    # PLSC's face backbones (not in FastNN's map): inception's [-1, 1] scaling, as PLSC's
    # (pixel - 127.5) / 128 within half a percent.
    "irresnet_50": "inception", "irresnet_100": "inception", "irresnet_101": "inception",
    "irresnet_152": "inception",
}


def list_preprocessing(pattern: str = "*") -> List[str]:
    """Sorted registered preprocessing names matching ``pattern`` (not the network names)."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def list_names(pattern: str = "*") -> List[str]:
    """Every name ``--preprocessing_name`` accepts: the preprocessings and the network names."""
    return sorted(n for n in list(_REGISTRY) + list(_ALIASES) if fnmatch.fnmatchcase(n, pattern))


def canonical_name(name: str) -> str:
    """The preprocessing ``name`` stands for (``resnet_v1_50`` -> ``vgg``).

    Raises:
      ValueError: unknown name; the message lists the preprocessings and says that network
        names work too.
    """
    name = _ALIASES.get(name, name)
    if name not in _REGISTRY:
        raise ValueError("unknown preprocessing_name %r; valid names: %s, or a network's name "
                         "(e.g. resnet_v1_50, inception_v3)" % (name, ", ".join(sorted(_REGISTRY))))
    return name


def get_preprocessing(name, is_training=False, use_grayscale=False):
    """Returns ``fn(image, output_height, output_width, **kwargs) -> float32 image``.

    Args:
      name: a preprocessing name, or a network's name standing for its preprocessing.
      is_training: random augmentation when True; deterministic evaluation transform when False.
      use_grayscale: convert the result to one channel (as TF-slim's ``use_grayscale``).

    Raises:
      ValueError: unknown name; the message lists the valid ones.
    """
    name = canonical_name(name)
    base = _REGISTRY[name]

    def preprocessing_fn(image, output_height, output_width, **kwargs):
        # Each function converts to grey where TF-slim does (before per-image standardisation
        # in cifarnet), so the normalisation holds for the one-channel output too.
        return base(image, output_height, output_width, is_training=is_training,
                    use_grayscale=use_grayscale, **kwargs)

    preprocessing_fn.name = name
    return preprocessing_fn
