"""The preprocessing registry: name -> ``fn(image, height, width, is_training, ...)``.

Every function takes one decoded ``uint8`` (or float) image ``[H, W, C]`` and returns a float32
image ``[height, width, C']``; training mode may be random, evaluation mode is deterministic.
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


def list_preprocessing(pattern: str = "*") -> List[str]:
    """Sorted registered preprocessing names matching ``pattern``."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_preprocessing(name, is_training=False, use_grayscale=False):
    """Returns ``fn(image, output_height, output_width, **kwargs) -> float32 image``.

    Args:
      name: a registered preprocessing name.
      is_training: random augmentation when True; deterministic evaluation transform when False.
      use_grayscale: convert the result to one channel (as TF-slim's ``use_grayscale``).

    Raises:
      ValueError: unknown name; the message lists the valid ones.
    """
    if name not in _REGISTRY:
        raise ValueError("unknown preprocessing_name %r; valid names: %s"
                         % (name, ", ".join(sorted(_REGISTRY))))
    base = _REGISTRY[name]

    def preprocessing_fn(image, output_height, output_width, **kwargs):
        # Each function converts to grey where TF-slim does (before per-image standardisation
        # in cifarnet), so the normalisation holds for the one-channel output too.
        return base(image, output_height, output_width, is_training=is_training,
                    use_grayscale=use_grayscale, **kwargs)

    preprocessing_fn.name = name
    return preprocessing_fn
