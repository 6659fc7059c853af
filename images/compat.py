"""Compatibility shims for the pinned stack (TensorFlow 2.15.1, tf-keras 2.15.1, tf-slim 1.1.0).

Second shim: AutoGraph leaves ``tensorflow`` and ``keras`` code alone but not ``tf_keras``, so every
legacy layer tf-slim builds (batch norm above all) had its whole call tree converted again: a
training-mode batch norm took about a second to build instead of a few milliseconds, and a big
network minutes.  ``tf_keras`` is added to AutoGraph's do-not-convert rules.

TensorFlow 2.15 looks the legacy Keras layers up at ``tf_keras.legacy_tf_layers`` when tf-slim's
``batch_norm`` builds a layer, while tf-keras 2.15.1 ships them at ``tf_keras.src.legacy_tf_layers``:
without an alias every network with batch norm fails with ``No module named
'tf_keras.legacy_tf_layers'``.  This is the only place that knows about it.
"""
import importlib
import sys

_installed = False


def install():
    """Registers the ``tf_keras.legacy_tf_layers`` alias once; safe to call repeatedly."""
    global _installed
    if _installed:
        return
    try:
        importlib.import_module("tf_keras.legacy_tf_layers")
    except ImportError:
        try:
            legacy = importlib.import_module("tf_keras.src.legacy_tf_layers")
        except ImportError:  # tf-keras missing entirely: let TensorFlow raise its own error later.
            legacy = None
        if legacy is not None:
            sys.modules["tf_keras.legacy_tf_layers"] = legacy
            for sub in ("base", "convolutional", "core", "normalization", "pooling",
                        "variable_scope_shim", "migration_utils"):
                try:
                    sys.modules["tf_keras.legacy_tf_layers." + sub] = importlib.import_module(
                        "tf_keras.src.legacy_tf_layers." + sub)
                except ImportError:
                    pass
    _skip_autograph_for_tf_keras()
    _installed = True


def _skip_autograph_for_tf_keras():
    try:
        from tensorflow.python.autograph.core import config as ag_config, config_lib
    except ImportError:  # a TensorFlow without this private module: nothing to speed up
        return
    rule = config_lib.DoNotConvert("tf_keras")
    if not any(getattr(r, "_prefix", None) == "tf_keras" for r in ag_config.CONVERSION_RULES):
        ag_config.CONVERSION_RULES = (rule,) + tuple(ag_config.CONVERSION_RULES)
