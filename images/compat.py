"""Compatibility shims for the pinned stack (TensorFlow 2.15.1, tf-keras 2.15.1, tf-slim 1.1.0).

1. TensorFlow 2.15 looks the legacy Keras layers up at ``tf_keras.legacy_tf_layers`` when tf-slim's
   ``batch_norm`` builds a layer, while tf-keras 2.15.1 ships them at
   ``tf_keras.src.legacy_tf_layers``: without an alias every network with batch norm fails with
   ``No module named 'tf_keras.legacy_tf_layers'``.
2. AutoGraph leaves ``tensorflow`` and ``keras`` code alone but not ``tf_keras``, so every legacy
   layer tf-slim builds (batch norm above all) had its whole call tree converted again: a
   training-mode batch norm took about a second to build instead of a few milliseconds, and a big
   network minutes.  ``tf_keras`` is added to AutoGraph's do-not-convert rules.

Both are installed lazily, by an import hook that answers only when the real
``tf_keras.legacy_tf_layers`` does not exist: importing :mod:`images` costs nothing, and programs
that never build a layer (the serving clients) never load TensorFlow.  This is the only place that
knows about either.
"""
import importlib
import importlib.abc
import importlib.util
import sys

_ALIAS = "tf_keras.legacy_tf_layers"
_REAL = "tf_keras.src.legacy_tf_layers"


class _ExistingModuleLoader(importlib.abc.Loader):
    def __init__(self, module):
        self._module = module

    def create_module(self, spec):
        return self._module

    def exec_module(self, module):
        pass  # already executed under its real name


class _LegacyLayersAlias(importlib.abc.MetaPathFinder):
    """Serves ``tf_keras.legacy_tf_layers[.x]`` from ``tf_keras.src.legacy_tf_layers[.x]``."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _ALIAS and not fullname.startswith(_ALIAS + "."):
            return None
        try:
            module = importlib.import_module(_REAL + fullname[len(_ALIAS):])
        except ImportError:  # tf-keras missing: let TensorFlow raise its own error.
            return None
        skip_autograph_for_tf_keras()
        return importlib.util.spec_from_loader(fullname, _ExistingModuleLoader(module))


def skip_autograph_for_tf_keras():
    """Adds ``tf_keras`` to AutoGraph's do-not-convert rules (once)."""
    try:
        from tensorflow.python.autograph.core import config as ag_config, config_lib
    except ImportError:  # a TensorFlow without this private module: nothing to speed up
        return
    if not any(getattr(r, "_prefix", None) == "tf_keras" for r in ag_config.CONVERSION_RULES):
        ag_config.CONVERSION_RULES = ((config_lib.DoNotConvert("tf_keras"),)
                                      + tuple(ag_config.CONVERSION_RULES))


def install():
    """Registers the import hook once; safe to call repeatedly.

    The hook goes last on ``sys.meta_path``, so it is asked only when no real module answers.
    """
    if not any(isinstance(f, _LegacyLayersAlias) for f in sys.meta_path):
        sys.meta_path.append(_LegacyLayersAlias())
    if "tensorflow" in sys.modules:
        skip_autograph_for_tf_keras()

