"""One loaded version of a SavedModel: its own graph and session, its signatures, a run method.

The model is loaded with TensorFlow's TF1 SavedModel loader into a private ``tf.Graph``: this reads
SavedModels written by TF1's ``SavedModelBuilder`` and by TF2's ``tf.saved_model.save`` alike, gives
the signatures exactly as stored (as TF Serving serves them), and ``Session.run`` is thread-safe
and releases the GIL, so batches run while the web server parses the next requests.
"""
import logging
import os
import threading
from typing import Dict, Iterable, Optional, Sequence

import numpy as np
import tensorflow.compat.v1 as tf
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
    try:
        dtype = tf.dtypes.as_dtype(info.dtype)
    except TypeError:  # DT_INVALID: the output of TF2's initializer "signature" is an op
        dtype = tf.string
    # A TensorInfo without a recorded shape (TF Serving's half_plus_three) says nothing about the
    # rank: it is unknown, not a scalar.
    if not info.HasField("tensor_shape") or info.tensor_shape.unknown_rank:
        shape = None
    else:
        shape = tuple(int(d.size) for d in info.tensor_shape.dim)
    try:
        np_dtype = np.dtype(object) if dtype == tf.string else np.dtype(dtype.as_numpy_dtype)
    except TypeError:  # resource, variant: no numpy type, and nothing a request can feed
        np_dtype = np.dtype(object)
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
        except (IOError, OSError, ValueError) as e:
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
        # TF Serving reports every signature it loaded, the TF2 initializer's included.
        self.signature_defs = dict(meta_graph.signature_def)
        served = {name: sig for name, sig in self.signature_defs.items() if _is_served(name)}
        if not served:
            self.session.close()
            raise ModelLoadError("%s has no signatures to serve" % export_dir)
        self.signatures: Dict[str, Signature] = {}
        for name, sig in self.signature_defs.items():
            self.signatures[name] = Signature(
                name=name, method_name=sig.method_name,
                inputs={k: _tensor_spec(k, v) for k, v in sig.inputs.items()},
                outputs={k: _tensor_spec(k, v) for k, v in sig.outputs.items()})
        self._callables = {}
        self._lock = threading.Lock()

    def _callable(self, feeds, fetches):
        key = (feeds, fetches)
        fn = self._callables.get(key)
        if fn is None:
            with self._lock:
                fn = self._callables.get(key)
                if fn is None:
                    fn = self._callables[key] = self._make_callable(feeds, fetches)
        return fn

    def _make_callable(self, feeds, fetches):
        # The session's C entry point, as TF Serving's Session::Run: the fed arrays go in as they
        # are, without Session.run's Python-side check of their shapes against the graph's
        # static shapes (the kernels check what they need; a signature's recorded shape may be
        # only a hint) and without its conversion to the tensor's dtype (a mismatch is an
        # InvalidArgument from TensorFlow, as in TF Serving).
        from tensorflow.python.client import pywrap_tf_session as tf_session
        feed_outputs = [self.graph.get_tensor_by_name(n)._as_tf_output() for n in feeds]
        fetch_outputs = [self.graph.get_tensor_by_name(n)._as_tf_output() for n in fetches]

        def run(*arrays, options=None):
            options_ptr = None
            if options is not None:
                options_ptr = tf_session.TF_NewBufferFromString(options.SerializeToString())
            try:
                return self.session._call_tf_sessionrun(
                    options_ptr, dict(zip(feed_outputs, arrays)), fetch_outputs, [], None)
            finally:
                if options_ptr is not None:
                    tf_session.TF_DeleteBuffer(options_ptr)
        return run

    def run(self, signature_name: str, inputs: Dict[str, np.ndarray],
            output_keys: Optional[Sequence[str]] = None,
            timeout_ms: Optional[int] = None) -> Dict[str, np.ndarray]:
        """Runs one signature.

        Args:
          signature_name: a key of :attr:`signatures`.
          inputs: arrays by input key (keys the signature has).
          output_keys: the outputs to fetch (default: all of them).
          timeout_ms: RunOptions timeout; None or 0 for none.

        Returns:
          Arrays by output key.

        Raises:
          tf.errors.OpError: the run failed (bad input values, timeout, model error).
        """
        signature = self.signatures[signature_name]
        in_keys = tuple(sorted(inputs))
        out_keys = tuple(output_keys) if output_keys is not None else tuple(
            sorted(signature.outputs))
        fn = self._callable(tuple(signature.inputs[k].tensor_name for k in in_keys),
                            tuple(signature.outputs[k].tensor_name for k in out_keys))
        options = None
        if timeout_ms:
            options = tf.RunOptions(timeout_in_ms=int(timeout_ms))
        values = fn(*[inputs[k] for k in in_keys], options=options)
        return dict(zip(out_keys, values))

    def signature_def_map(self):
        """TF Serving's ``SignatureDefMap`` proto of this version (its metadata reply)."""
        from tensorflow_serving.apis import get_model_metadata_pb2
        result = get_model_metadata_pb2.SignatureDefMap()
        for name, sig in self.signature_defs.items():
            result.signature_def[name].CopyFrom(sig)
        return result

    def close(self):
        self.session.close()
