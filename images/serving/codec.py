"""TensorFlow Serving's JSON request and response formats <-> numpy arrays.

The rules are TF Serving's REST API ones:

* ``{"instances": [...]}`` (row format): one element per example, each an object naming every input
  (or the bare value when the signature has one input); the inputs are stacked on a new first axis
  and every output must have that batch size.  The reply is ``{"predictions": [...]}``.
* ``{"inputs": {...}}`` (columnar format): each input given whole (or the bare value for a single
  input).  The reply is ``{"outputs": {...}}`` (or the bare value for a single output).
* Binary strings travel as ``{"b64": "<base64>"}``; other strings are UTF-8 text.  String outputs
  whose name ends in ``_bytes`` are sent back base64-encoded the same way.
* ``:classify`` takes ``{"examples": [{feature: value}, ...], "context": {...}}`` and replies
  ``{"results": [[[label, score], ...], ...]}``.

Every problem with a request raises :class:`RequestError` with a message that says what was wrong.
"""
import base64
import binascii
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from images.serving.signatures import CLASSIFY_METHOD, Signature, TensorSpec

_B64 = "b64"


class RequestError(Exception):
    """A request the server refuses; ``status_code`` is the HTTP status (4xx)."""

    def __init__(self, message, status_code=400):
        super().__init__(message)
        self.message = message
        self.status_code = status_code


# ---------------------------------------------------------------------------------------------
# JSON values -> arrays

def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and _B64 in value


def _nested_shape(value):
    """The shape implied by the first element at each depth of nested lists."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _string_leaf(value, where):
    if isinstance(value, str):
        return value.encode("utf-8")
    if _is_b64(value):
        encoded = value[_B64]
        if not isinstance(encoded, str):
            raise RequestError("%s: the value of \"b64\" must be a base64 string, got %s"
                               % (where, type(encoded).__name__))
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as e:
            raise RequestError("%s: invalid base64 in {\"b64\": ...}: %s" % (where, e))
    raise RequestError("%s takes strings: give text or {\"b64\": \"<base64>\"} for binary data, "
                       "not %s" % (where, _json_type(value)))


def _json_type(value):
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number (%r)" % (value,)
    if isinstance(value, dict):
        return "an object with keys %s" % sorted(value)[:5]
    if value is None:
        return "null"
    return type(value).__name__


def _string_array(value, where):
    shape = _nested_shape(value)
    flat = []

    def walk(v, depth):
        if depth == len(shape):
            if isinstance(v, list):
                raise RequestError("%s is ragged: nested lists must have the same length at "
                                   "each depth" % where)
            flat.append(_string_leaf(v, where))
            return
        if not isinstance(v, list) or len(v) != shape[depth]:
            raise RequestError("%s is ragged: nested lists must have the same length at each "
                               "depth (expected %d elements at depth %d)"
                               % (where, shape[depth], depth))
        for item in v:
            walk(item, depth + 1)

    walk(value, 0)
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    return array.reshape(shape)


def _numeric_array(value, spec, where):
    try:
        source = np.asarray(value)
    except ValueError:
        raise RequestError("%s is ragged: nested lists must have the same length at each depth"
                           % where)
    want = spec.dtype
    if source.dtype.kind not in "biuf":
        if source.size == 0 and source.dtype.kind in "O":
            source = source.astype(np.float64)
        else:
            raise RequestError("%s takes %s numbers; got %s" % (
                where, spec.dtype_name, "strings" if source.dtype.kind in "US" else
                "non-numeric values (objects or nulls)"))
    if want.kind == "b":
        if source.dtype.kind != "b":
            raise RequestError("%s takes booleans (true/false); got numbers" % where)
        return source.astype(want)
    if want.kind in "iu":
        if source.dtype.kind == "f":
            if not np.all(np.isfinite(source)) or not np.all(source == np.round(source)):
                bad = source[~(np.isfinite(source) & (source == np.round(source)))].ravel()[0]
                raise RequestError("%s takes integers (%s); got %r"
                                   % (where, spec.dtype_name, float(bad)))
        if source.size:
            info = np.iinfo(want)
            low, high = source.min(), source.max()
            if low < info.min or high > info.max:
                raise RequestError("%s takes %s; %r is out of range [%d, %d]" % (
                    where, spec.dtype_name, (low if low < info.min else high).item(),
                    info.min, info.max))
        return source.astype(want)
    if want.kind == "f":
        with np.errstate(over="ignore"):  # overflow is reported below, with the input's name
            array = source.astype(want)
        if source.dtype.kind == "f" and np.any(np.isinf(array) & np.isfinite(source)):
            raise RequestError("%s takes %s; a value is too large for it"
                               % (where, spec.dtype_name))
        return array
    if want.kind == "c":
        return source.astype(want)
    raise RequestError("%s has dtype %s, which this server cannot take from JSON"
                       % (where, spec.dtype_name))


def check_shape(array, spec, where, batch_prefix=False):
    """Raises RequestError unless ``array.shape`` fits ``spec.shape`` (-1 matches any size)."""
    if spec.shape is None:
        return
    expected = spec.shape
    if len(array.shape) != len(expected) or any(
            want != -1 and got != want for got, want in zip(array.shape, expected)):
        hint = ""
        if batch_prefix:
            hint = (" (row format: each instance is one example without the batch dimension, "
                    "so an instance must have shape [%s])"
                    % ", ".join(map(str, expected[1:])))
        raise RequestError("%s has shape [%s] but the signature expects %s, where -1 is any size%s"
                           % (where, ", ".join(map(str, array.shape)), spec.describe(), hint))


def to_array(value, spec: TensorSpec, where: str, batch_prefix=False) -> np.ndarray:
    """Converts one JSON value to an array of ``spec``'s dtype and checks its shape.

    Args:
      value: the decoded JSON (nested lists, numbers, strings, ``{"b64": ...}``).
      spec: the signature input it is for.
      where: how messages name it, e.g. ``input 'images'``.
      batch_prefix: the value was stacked from row-format instances (for the message hint).

    Raises:
      RequestError: wrong dtype, ragged lists, bad base64 or a shape the signature rejects.
    """
    if spec.is_string:
        array = _string_array(value, where)
    else:
        array = _numeric_array(value, spec, where)
    check_shape(array, spec, where, batch_prefix)
    return array


# ---------------------------------------------------------------------------------------------
# predict

class PredictRequest:
    """A decoded ``:predict`` body: arrays per input, the format, and the batch size if any."""

    def __init__(self, inputs, row_format, rows):
        self.inputs: Dict[str, np.ndarray] = inputs
        self.row_format: bool = row_format
        self.rows: Optional[int] = rows


def _unknown_inputs_error(names, signature):
    return RequestError("unknown input(s) %s for signature '%s'; it takes: %s"
                        % (", ".join("'%s'" % n for n in sorted(names)), signature.name,
                           signature.describe_inputs()))


def _instances_to_arrays(instances, signature):
    if not isinstance(instances, list):
        raise RequestError("\"instances\" must be a list with one element per example, got %s"
                           % _json_type(instances))
    if not instances:
        raise RequestError("\"instances\" is empty: send at least one instance")
    keys = sorted(signature.inputs)
    single = len(keys) == 1
    columns: Dict[str, List[Any]] = {k: [] for k in keys}
    for i, instance in enumerate(instances):
        if isinstance(instance, dict) and not _is_b64(instance):
            missing = [k for k in keys if k not in instance]
            extra = [k for k in instance if k not in signature.inputs]
            if extra:
                raise _unknown_inputs_error(extra, signature)
            if missing:
                raise RequestError("instance %d lacks input(s) %s; signature '%s' takes: %s" % (
                    i, ", ".join("'%s'" % k for k in missing), signature.name,
                    signature.describe_inputs()))
            for k in keys:
                columns[k].append(instance[k])
        elif single:
            columns[keys[0]].append(instance)
        else:
            raise RequestError("instance %d is %s, but signature '%s' takes %d inputs: each "
                               "instance must be an object naming them (%s)"
                               % (i, _json_type(instance), signature.name, len(keys),
                                  ", ".join(keys)))
    arrays = {}
    for k in keys:
        spec = signature.inputs[k]
        if not spec.has_batch_dim:
            raise RequestError("input '%s' of signature '%s' has no batch dimension (%s), so the "
                               "row format (\"instances\") cannot stack it; send it with the "
                               "columnar format (\"inputs\")"
                               % (k, signature.name, spec.describe()))
        arrays[k] = to_array(columns[k], spec, "input '%s'" % k, batch_prefix=True)
    return arrays


def _columns_to_arrays(inputs, signature):
    keys = sorted(signature.inputs)
    if isinstance(inputs, dict) and not _is_b64(inputs):
        extra = [k for k in inputs if k not in signature.inputs]
        if extra:
            raise _unknown_inputs_error(extra, signature)
        missing = [k for k in keys if k not in inputs]
        if missing:
            raise RequestError("\"inputs\" lacks %s; signature '%s' takes: %s" % (
                ", ".join("'%s'" % k for k in missing), signature.name,
                signature.describe_inputs()))
        values = inputs
    elif len(keys) == 1:
        values = {keys[0]: inputs}
    else:
        raise RequestError("\"inputs\" must be an object naming the %d inputs of signature '%s' "
                           "(%s)" % (len(keys), signature.name, ", ".join(keys)))
    return {k: to_array(values[k], signature.inputs[k], "input '%s'" % k) for k in keys}


def decode_predict_request(body: Dict[str, Any], signature: Signature) -> PredictRequest:
    """Turns a ``:predict`` body into input arrays for ``signature``.

    Raises:
      RequestError: the body does not follow the format or does not fit the signature.
    """
    has_rows, has_cols = "instances" in body, "inputs" in body
    if has_rows == has_cols:
        raise RequestError("a predict request needs exactly one of \"instances\" (row format) or "
                           "\"inputs\" (columnar format)%s"
                           % ("; it has both" if has_rows else ""))
    unknown = sorted(set(body) - {"instances", "inputs", "signature_name"})
    if unknown:
        raise RequestError("unknown field(s) %s in the predict request; it takes "
                           "\"signature_name\" and \"instances\" or \"inputs\"" % unknown)
    if has_rows:
        arrays = _instances_to_arrays(body["instances"], signature)
        return PredictRequest(arrays, True, len(body["instances"]))
    arrays = _columns_to_arrays(body["inputs"], signature)
    return PredictRequest(arrays, False, common_batch_size(arrays))


def common_batch_size(arrays: Dict[str, np.ndarray]) -> Optional[int]:
    """The shared first dimension of all arrays, or None when they do not share one."""
    sizes = {a.shape[0] if a.ndim else None for a in arrays.values()}
    if len(sizes) != 1 or None in sizes:
        return None
    return sizes.pop()


# ---------------------------------------------------------------------------------------------
# arrays -> JSON values

def _bytes_to_json(value, as_b64):
    if not as_b64:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {_B64: base64.b64encode(value).decode("ascii")}


def to_json(array: np.ndarray, key: str):
    """An output array as nested JSON lists (strings as text, or base64 for ``*_bytes``)."""
    array = np.asarray(array)
    if array.dtype == np.dtype(object) or array.dtype.kind == "S":
        as_b64 = key.endswith("_bytes")
        flat = [_bytes_to_json(bytes(v), as_b64) for v in array.ravel()]
        if array.ndim == 0:
            return flat[0]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(array.shape).tolist()
    if array.dtype.kind == "c":
        return np.stack([array.real, array.imag], axis=-1).tolist()
    return array.tolist()


def encode_predict_response(outputs: Dict[str, np.ndarray], request: PredictRequest):
    """The JSON reply (``predictions`` or ``outputs``) for ``outputs`` of a decoded request.

    Raises:
      RequestError: row format asked for but an output lacks the request's batch dimension.
    """
    if request.row_format:
        rows = request.rows
        for key, value in outputs.items():
            if np.ndim(value) == 0 or np.shape(value)[0] != rows:
                raise RequestError("output '%s' has shape %s, which is not batched over the %d "
                                   "instances, so it cannot be returned in row format; send the "
                                   "request with \"inputs\" (columnar format) instead"
                                   % (key, list(np.shape(value)), rows))
        lists = {key: to_json(value, key) for key, value in outputs.items()}
        if len(lists) == 1:
            return {"predictions": next(iter(lists.values()))}
        keys = sorted(lists)
        return {"predictions": [{k: lists[k][i] for k in keys} for i in range(rows)]}
    values = {key: to_json(value, key) for key, value in outputs.items()}
    if len(values) == 1:
        return {"outputs": next(iter(values.values()))}
    return {"outputs": values}


# ---------------------------------------------------------------------------------------------
# classify

def classification_outputs(signature: Signature) -> Optional[Tuple[str, ...]]:
    """The outputs ``:classify`` reads for ``signature``, or None when it does not classify.

    TF Serving's classification signatures return ``classes`` (labels) and ``scores``; the
    exported image models return ``top_k_classes`` with ``probabilities`` (the top-k ones,
    aligned; or all classes', indexed by class id); ``probabilities`` (or ``scores``) alone are
    ranked here.
    """
    outs = signature.outputs

    def rank(key, n):
        return key in outs and outs[key].shape is not None and len(outs[key].shape) == n

    if rank("scores", 2) and rank("classes", 2):
        return ("classes", "scores")
    if rank("top_k_classes", 2) and rank("probabilities", 2):
        return ("top_k_classes", "probabilities")
    if rank("probabilities", 2):
        return ("probabilities",)
    if rank("scores", 2):
        return ("scores",)
    if signature.method_name == CLASSIFY_METHOD and ("classes" in outs or "scores" in outs):
        return tuple(k for k in ("classes", "scores") if k in outs)
    return None


def no_classification_error(signature: Signature, model_name: str):
    outs = ", ".join(sorted(signature.outputs))
    hint = ""
    if "embeddings" in signature.outputs:
        hint = (" This is an embedding model: it returns embeddings, not classes; call :predict "
                "(or the FaceService client) to get them.")
    return RequestError("signature '%s' of model '%s' has no classification outputs (it returns: "
                        "%s), so :classify cannot rank classes.%s"
                        % (signature.name, model_name, outs, hint))


def _merge_context(examples, context):
    if context is None:
        return examples
    if not isinstance(context, dict):
        raise RequestError("\"context\" must be an object of features shared by all examples, "
                           "got %s" % _json_type(context))
    merged = []
    for i, example in enumerate(examples):
        clash = sorted(set(example) & set(context))
        if clash:
            raise RequestError("example %d repeats context feature(s) %s" % (i, clash))
        merged.append(dict(context, **example))
    return merged


def _example_feature(value, where):
    from tensorflow.core.example import feature_pb2  # server side only: TF is loaded there
    values = value if isinstance(value, list) else [value]
    feature = feature_pb2.Feature()
    if all(isinstance(v, str) or _is_b64(v) for v in values):
        feature.bytes_list.value.extend(_string_leaf(v, where) for v in values)
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        feature.int64_list.value.extend(values)
    elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        feature.float_list.value.extend(float(v) for v in values)
    else:
        raise RequestError("%s must be a string, {\"b64\": ...}, a number, or a list of one kind"
                           % where)
    return feature


def _serialize_examples(examples):
    from tensorflow.core.example import example_pb2
    serialized = []
    for i, example in enumerate(examples):
        proto = example_pb2.Example()
        for name, value in example.items():
            proto.features.feature[name].CopyFrom(
                _example_feature(value, "example %d feature '%s'" % (i, name)))
        serialized.append(proto.SerializeToString())
    array = np.empty(len(serialized), dtype=object)
    array[:] = serialized
    return array


def decode_classify_request(body: Dict[str, Any], signature: Signature, model_name: str):
    """Turns a ``:classify`` body into ``(inputs, rows)`` for ``signature``.

    A TF Serving classification signature (one string input of serialized ``tf.Example``) gets
    the examples serialized; any other signature gets each example's features as its named
    inputs, as the row format would.

    Raises:
      RequestError: malformed body, or a signature without classification outputs.
    """
    unknown = sorted(set(body) - {"examples", "context", "signature_name"})
    if unknown:
        raise RequestError("unknown field(s) %s in the classify request; it takes "
                           "\"signature_name\", \"context\" and \"examples\"" % unknown)
    if "examples" not in body:
        raise RequestError("a classify request needs \"examples\": a list of objects mapping "
                           "feature names to values")
    examples = body["examples"]
    if not isinstance(examples, list) or not examples:
        raise RequestError("\"examples\" must be a non-empty list of objects, got %s"
                           % _json_type(examples))
    for i, example in enumerate(examples):
        if not isinstance(example, dict):
            raise RequestError("example %d must be an object of features, got %s"
                               % (i, _json_type(example)))
    if classification_outputs(signature) is None:
        raise no_classification_error(signature, model_name)
    examples = _merge_context(examples, body.get("context"))
    string_inputs = [s for s in signature.inputs.values() if s.is_string]
    if (signature.method_name == CLASSIFY_METHOD and len(signature.inputs) == 1
            and string_inputs):
        spec = string_inputs[0]
        array = _serialize_examples(examples)
        check_shape(array, spec, "the serialized examples")
        return {spec.key: array}, len(examples)
    return _instances_to_arrays(examples, signature), len(examples)


def encode_classify_response(outputs: Dict[str, np.ndarray], signature: Signature):
    """``{"results": [[[label, score], ...], ...]}`` from the classification outputs."""
    keys = classification_outputs(signature)
    results = []
    if keys == ("classes", "scores"):
        classes, scores = outputs["classes"], outputs["scores"]
        for row_c, row_s in zip(classes, scores):
            results.append([[_label(c), float(s)] for c, s in zip(row_c, row_s)])
    elif keys == ("top_k_classes", "probabilities"):
        top_k, probs = outputs["top_k_classes"], outputs["probabilities"]
        # The exporter's probabilities are the top-k ones, aligned with top_k_classes; a model
        # whose probabilities cover every class is indexed by class id instead.
        aligned = np.shape(probs)[1] == np.shape(top_k)[1]
        for top, row in zip(top_k, probs):
            results.append([[_label(c), float(row[j] if aligned else row[int(c)])]
                            for j, c in enumerate(top)])
    elif keys in (("probabilities",), ("scores",)):
        for probs in outputs[keys[0]]:
            order = np.argsort(-np.asarray(probs), kind="stable")
            results.append([[str(int(c)), float(probs[c])] for c in order])
    elif keys == ("classes",):
        results = [[[_label(c), 0.0] for c in np.atleast_1d(row)] for row in outputs["classes"]]
    else:  # scores only, with no ranks: TF Serving labels them by position
        results = [[[str(j), float(s)] for j, s in enumerate(np.atleast_1d(row))]
                   for row in outputs["scores"]]
    return {"results": results}


def _label(value):
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)
