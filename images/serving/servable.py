"""One loaded version of a SavedModel: its own graph and session, its signatures, a run method.

The model is loaded with TensorFlow's TF1 SavedModel loader into a private ``tf.Graph``: this reads
SavedModels written by TF1's ``SavedModelBuilder`` and by TF2's ``tf.saved_model.save`` alike, gives
the signatures exactly as stored (as TF Serving serves them), and ``Session.run`` is thread-safe
and releases the GIL, so batches run while the web server parses the next requests.
"""
import logging
import os
from typing import Dict, Iterable, Optional

import numpy as np
import tensorflow.compat.v1 as tf
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow.python.saved_model import loader_impl
from tensorflow.python.util import deprecation

from images.serving.signatures import Signature, TensorSpec

log = logging.getLogger("fastnn.serving")

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


class ModelLoadError(Exception):
    """The directory does not hold a SavedModel this server can load; the message says why."""


def is_saved_model_dir(path):
    return any(os.path.isfile(os.path.join(path, name)) for name in SAVED_MODEL_FILES)


def _tensor_spec(key, info) -> TensorSpec:
    dtype = tf.dtypes.as_dtype(info.dtype)
    if info.tensor_shape.unknown_rank:
        shape = None
    else:
        shape = tuple(int(d.size) for d in info.tensor_shape.dim)
    np_dtype = np.dtype(object) if dtype == tf.string else np.dtype(dtype.as_numpy_dtype)
    return TensorSpec(key=key, tensor_name=info.name, dtype=np_dtype,
                      dtype_name=types_pb2.DataType.Name(info.dtype), shape=shape)


def _is_served(name):
    # TF2 SavedModels store their initializer as a "__saved_model_init_op" signature: not an API.
    return not name.startswith("__")


class Servable:
    """A SavedModel version ready to run.

    Args:
      export_dir: the version directory (holding ``saved_model.pb`` and ``variables/``).
      version: its number.
      tags: MetaGraph tags to load (TF Serving's ``--saved_model_tags``).
      session_config: a ``tf.ConfigProto`` (threads), or None.

    Raises:
      ModelLoadError: no SavedModel there, no MetaGraph with these tags, or no signature.
    """

    def __init__(self, export_dir: str, version: int, tags: Iterable[str] = ("serve",),
                 session_config: Optional[tf.ConfigProto] = None):
        self.export_dir = export_dir
        self.version = version
        tags = list(tags)
        if not is_saved_model_dir(export_dir):
            raise ModelLoadError("%s holds no saved_model.pb" % export_dir)
        try:
            saved_model = loader_impl.parse_saved_model(export_dir)
        except IOError as e:
            raise ModelLoadError("cannot read the SavedModel in %s: %s" % (export_dir, e))
        available = [sorted(mg.meta_info_def.tags) for mg in saved_model.meta_graphs]
        if sorted(tags) not in available:
            raise ModelLoadError("%s has no MetaGraph tagged %s; it has %s: pass "
                                 "--saved_model_tags=%s" % (export_dir, sorted(tags), available,
                                                            ",".join(available[0]) if available
                                                            else "..."))
        self.graph = tf.Graph()
        self.session = tf.Session(graph=self.graph, config=session_config)
        try:
            with self.graph.as_default(), deprecation.silence():
                meta_graph = tf.saved_model.loader.load(self.session, tags, export_dir)
        except Exception as e:
            self.session.close()
            raise ModelLoadError("loading %s failed: %s" % (export_dir, e)) from e
        self.graph.finalize()
        self._signature_defs = {name: sig for name, sig in meta_graph.signature_def.items()
                                if _is_served(name)}
        if not self._signature_defs:
            self.session.close()
            raise ModelLoadError("%s has no signatures to serve" % export_dir)
        self.signatures: Dict[str, Signature] = {}
        self._fetches = {}
        self._feed_names = {}
        for name, sig in self._signature_defs.items():
            signature = Signature(
                name=name, method_name=sig.method_name,
                inputs={k: _tensor_spec(k, v) for k, v in sig.inputs.items()},
                outputs={k: _tensor_spec(k, v) for k, v in sig.outputs.items()})
            self.signatures[name] = signature
            self._fetches[name] = {k: s.tensor_name for k, s in signature.outputs.items()}
            self._feed_names[name] = {k: s.tensor_name for k, s in signature.inputs.items()}

    def run(self, signature_name: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Runs one signature on arrays already checked against its specs (by the codec)."""
        feeds = self._feed_names[signature_name]
        feed_dict = {feeds[k]: v for k, v in inputs.items()}
        return self.session.run(self._fetches[signature_name], feed_dict)

    def signature_def_json(self):
        """The signatures as TF Serving's metadata reply shows them (SignatureDefs as JSON)."""
        return {name: json_format.MessageToDict(sig, preserving_proto_field_name=True)
                for name, sig in sorted(self._signature_defs.items())}

    def close(self):
        self.session.close()


def tf_error_message(error: Exception) -> str:
    """The useful part of a TensorFlow error: its message without graph-execution boilerplate."""
    message = getattr(error, "message", None) or str(error)
    lines = [line.strip() for line in message.splitlines()]
    kept = [line for line in lines
            if line and line != "Graph execution error:" and not line.startswith("[[")
            and not line.startswith("Detected at node") and not line.startswith("Stack trace")]
    return " ".join(kept) or message.strip()


def is_bad_input_error(error: Exception) -> bool:
    """True for TensorFlow errors caused by the request's values (HTTP 400, not 500)."""
    return isinstance(error, tf.errors.InvalidArgumentError)
