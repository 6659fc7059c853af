"""TensorFlow Serving's JSON tensor format <-> numpy arrays, with TF Serving's rules and messages.

The rules are those of TF Serving's REST API (g3doc/api_rest.md and util/json_tensor.cc):

* ``{"instances": [...]}`` (row format): one element per example, each an object naming every input
  (or the bare value when the signature has one input); every example must give each input the
  same shape, and the inputs are stacked on a new first axis.  The reply is ``{"predictions": ...}``.
* ``{"inputs": ...}`` (columnar format): each input given whole (or the bare value for a single
  input).  The reply is ``{"outputs": ...}``.
* A tensor's shape is read from the nesting of its lists; it is not checked against the
  signature's recorded shape (TensorFlow's kernels check what they need), so signatures without a
  recorded shape, or with one that is only a hint, work as in TF Serving.
* Numbers: any JSON number for float types; integers only for integer types (within range);
  ``true``/``false`` for bool; strings are UTF-8 text or ``{"b64": "<base64>"}`` for binary data.
  ``NaN``, ``Infinity`` and ``-Infinity`` are accepted, and written back the same way.
* String outputs whose name ends in ``_bytes`` are sent back as ``{"b64": ...}``.

Every problem raises :class:`~images.serving.errors.ServingError` (``INVALID_ARGUMENT``) with TF
Serving's message where it has one.
"""
import base64
import binascii
import json
from typing import Any, Dict, List, Optional

import numpy as np

from images.serving.errors import invalid
from images.serving.signatures import Signature, TensorSpec

_B64 = "b64"
# numpy's limit on the number of dimensions (TensorFlow's is 254); deeper tensors are refused.
MAX_RANK = 32

_INT_RANGES = {np.dtype(t): (np.iinfo(t).min, np.iinfo(t).max)
               for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                         np.uint64)}


# ---------------------------------------------------------------------------------------------
# JSON body

def parse_body(body: bytes) -> Dict[str, Any]:
    """The JSON object of a request body (TF Serving's ParseJson).

    NaN and Infinity tokens are accepted.  A body that is not UTF-8 is read with its invalid bytes
    kept (as TF Serving's parser does), so string values carry them through unchanged.

    Raises:
      ServingError: empty, not JSON, nested too deeply, or not an object.
    """
    if not body:
        raise invalid("JSON Parse error: The document is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", "surrogateescape")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise invalid("JSON Parse error: %s at offset: %d" % (e.msg, e.pos))
    except RecursionError:
        raise invalid("JSON Parse error: the document is nested too deeply")
    if not isinstance(doc, dict):
        raise invalid("JSON Value: %s Is not object" % value_to_string(doc))
    return doc


def value_to_string(value, limit=200) -> str:
    """A JSON value as text for messages (cut at ``limit`` characters)."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def json_type(value) -> str:
    """rapidjson's name of the JSON type of ``value`` (as TF Serving's messages spell it)."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def signature_name_of(body: Dict[str, Any]) -> str:
    """The optional ``signature_name`` ("" when absent).

    Raises:
      ServingError: it is not a string.
    """
    name = body.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid("JSON Value: %s not formatted correctly. 'signature_name' key must be a "
                      "string value." % value_to_string(body))
    return name


# ---------------------------------------------------------------------------------------------
# JSON values -> arrays

def is_b64(value) -> bool:
    """True for ``{"b64": "<string>"}`` (exactly that one key, holding a string)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(_B64), str)


def decode_b64(value) -> bytes:
    """The bytes of a ``{"b64": ...}`` object (standard alphabet, padding optional)."""
    if not is_b64(value):
        raise invalid("JSON Value: %s not formatted correctly for base64 data"
                      % value_to_string(value))
    text = value[_B64]
    try:
        data = text.encode("ascii")
        if len(data) % 4:
            data += b"=" * (-len(data) % 4)
        return base64.b64decode(data, validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise invalid("Unable to base64 decode")


def text_bytes(text: str) -> bytes:
    """A JSON string's bytes: UTF-8, with the invalid bytes of a non-UTF-8 body restored."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise invalid("JSON string %s holds an unpaired surrogate escape (\\ud800-\\udfff); "
                      "send binary data as {\"b64\": ...}" % value_to_string(text))


def dense_shape(value) -> List[int]:
    """The shape implied by the first element at each depth of nested lists (TF Serving's rule)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if len(shape) > MAX_RANK:
            raise invalid("a tensor is nested more than %d lists deep, the most this server "
                          "takes (TensorFlow tensors of such rank are not supported here)"
                          % MAX_RANK)
        if not value:
            break
        value = value[0]
    return shape


def _type_error(value, spec: TensorSpec):
    return invalid("JSON Value: %s Type: %s is not of expected type: %s"
                   % (value_to_string(value), json_type(value), spec.tf_type_name))


def _leaf(value, spec: TensorSpec):
    """One scalar JSON value as a Python value of ``spec``'s type (TF's AddValueToTensor)."""
    kind = spec.dtype.kind
    if spec.is_string:
        if isinstance(value, str):
            return text_bytes(value)
        if isinstance(value, bytes):  # from a tf.Example's bytes feature
            return value
        if isinstance(value, dict):
            return decode_b64(value)
        raise _type_error(value, spec)
    if isinstance(value, (dict, list)) or value is None or isinstance(value, str):
        raise _type_error(value, spec)
    if kind == "b":
        if not isinstance(value, bool):
            raise _type_error(value, spec)
        return value
    if isinstance(value, bool):
        raise _type_error(value, spec)
    if kind in "iu":
        if not isinstance(value, int):
            raise _type_error(value, spec)
        low, high = _INT_RANGES[spec.dtype]
        if not low <= value <= high:
            raise invalid("JSON Value: %d is out of the range [%d, %d] of %s"
                          % (value, low, high, spec.tf_type_name))
        return value
    if kind in "fc":
        return float(value) if isinstance(value, int) and abs(value) > 2 ** 63 else value
    raise invalid("Conversion of JSON Value: %s to type: %s is not supported"
                  % (value_to_string(value), spec.tf_type_name))


def _fill(value, shape, level, spec, out):
    """TF Serving's FillTensorProto: checks the nesting against ``shape`` and collects leaves."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid("JSON Value: %s found at incorrect level: %d in the JSON DOM. "
                          "Expected at level: %d" % (value_to_string(value), level + 1, rank))
        out.append(_leaf(value, spec))
        return
    if level >= rank:
        raise invalid("Encountered list at unexpected level: %d expected < %d" % (level, rank))
    if len(value) != shape[level]:
        raise invalid("Encountered list at unexpected size: %d at level: %d expected size: %d"
                      % (len(value), level, shape[level]))
    for item in value:
        _fill(item, shape, level + 1, spec, out)


def _np_dtype(spec):
    if not spec.is_string and spec.dtype.kind not in "biufc":
        raise invalid("input '%s' has dtype %s, which cannot be given in JSON"
                      % (spec.key, spec.dtype_name))
    return spec.dtype


def _fast_numeric(value, spec, shape) -> Optional[np.ndarray]:
    """numpy's conversion when it is exact for TF's rules; None to take the checked path."""
    kind = spec.dtype.kind
    if spec.is_string or kind not in "fc" or not shape:
        return None
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if array.dtype.kind not in "if" or list(array.shape) != shape:
        return None
    with np.errstate(over="ignore"):  # TF Serving: a float beyond the type's range becomes inf
        return array.astype(spec.dtype)


def to_array(value, spec: TensorSpec) -> np.ndarray:
    """One JSON tensor (a value or nested lists) as an array of ``spec``'s dtype.

    Raises:
      ServingError: a value of the wrong type, ragged lists, bad base64, or nesting too deep.
    """
    shape = dense_shape(value)
    dtype = _np_dtype(spec)
    array = _fast_numeric(value, spec, shape)
    if array is not None:
        return array
    leaves: List[Any] = []
    _fill(value, shape, 0, spec, leaves)
    if spec.is_string:
        array = np.empty(len(leaves), dtype=object)
        array[:] = leaves
        return array.reshape(shape)
    with np.errstate(over="ignore"):
        return np.array(leaves, dtype=np.float64 if dtype.kind == "f" else None).astype(
            dtype).reshape(shape)


class PredictRequest:
    """A decoded ``:predict`` body: arrays by input name and the format to answer in."""

    def __init__(self, inputs: Dict[str, np.ndarray], row_format: bool):
        self.inputs = inputs
        self.row_format = row_format

    @property
    def rows(self) -> Optional[int]:
        """The shared first dimension of the inputs, or None when they do not share one."""
        return common_batch_size(self.inputs)


def common_batch_size(arrays: Dict[str, np.ndarray]) -> Optional[int]:
    """The shared first dimension of all arrays, or None when they do not share one."""
    sizes = {a.shape[0] if a.ndim else None for a in arrays.values()}
    if len(sizes) != 1 or None in sizes:
        return None
    return sizes.pop()


def _shape_text(shape):
    return "[%s]" % ",".join(map(str, shape))


def _instances_to_arrays(instances, signature: Signature):
    inputs = signature.inputs
    first = instances[0]
    if not isinstance(first, dict) and len(inputs) > 1:
        raise invalid("instances is a plain list, but expecting list of objects as multiple "
                      "input tensors required as per tensorinfo_map")

    def is_object(v):
        return isinstance(v, dict) and not is_b64(v)

    objects = is_object(first)
    names = sorted(inputs)
    if not objects:
        name = names[0]
        spec = inputs[name]
        # Fast path: the whole list at once when numpy can read it exactly.
        array = _fast_numeric(instances, spec, dense_shape(instances))
        if array is not None:
            return {name: array}
    columns: Dict[str, List[np.ndarray]] = {}
    shapes: Dict[str, List[int]] = {}
    for i, element in enumerate(instances):
        if objects:
            if not is_object(element):
                raise invalid("Expecting object but got list at item %d of input list" % i)
            items = element.items()
        else:
            if is_object(element):
                raise invalid("Expecting value/list but got object at item %d of input list" % i)
            items = [(names[0], element)]
        for name, value in items:
            try:
                if name not in inputs:
                    raise invalid("JSON object: does not have named input: %s" % name)
                array = to_array(value, inputs[name])
                if name not in shapes:
                    shapes[name] = list(array.shape)
                elif int(np.prod(shapes[name])) != array.size:
                    raise invalid("Expecting tensor size: %d but got: %d"
                                  % (int(np.prod(shapes[name])), array.size))
                elif shapes[name] != list(array.shape):
                    raise invalid("Expecting shape %s but got: %s"
                                  % (_shape_text(shapes[name]), _shape_text(array.shape)))
            except Exception as e:
                message = getattr(e, "message", str(e))
                if objects:
                    raise invalid("Failed to process element: %d key: %s of 'instances' list. "
                                  "Error: %s" % (i, name, message))
                raise invalid("Failed to process element: %d of 'instances' list. Error: %s"
                              % (i, message))
            columns.setdefault(name, []).append(array)
        if objects and set(element) != set(inputs):
            raise invalid("Failed to process element: %d of 'instances' list. JSON object: %s "
                          "keys must be equal to: %s"
                          % (i, value_to_string(element), ",".join(names)))
    arrays = {}
    for name, parts in columns.items():
        if len(shapes[name]) + 1 > MAX_RANK:
            raise invalid("input '%s' would have rank %d, more than the %d this server takes"
                          % (name, len(shapes[name]) + 1, MAX_RANK))
        arrays[name] = np.stack(parts) if parts[0].dtype != object else _stack_objects(parts)
    return arrays


def _stack_objects(parts):
    out = np.empty((len(parts),) + parts[0].shape, dtype=object)
    for i, part in enumerate(parts):
        out[i, ...] = part
    return out


def _columns_to_arrays(value, signature: Signature):
    inputs = signature.inputs
    if not isinstance(value, dict) or is_b64(value):
        if len(inputs) > 1:
            raise invalid("inputs is a plain value/list, but expecting an object as multiple "
                          "input tensors required as per tensorinfo_map")
        name = next(iter(inputs))
        return {name: to_array(value, inputs[name])}
    arrays = {}
    for name in sorted(inputs):
        if name not in value:
            raise invalid("Missing named input: %s in 'inputs' object." % name)
        arrays[name] = to_array(value[name], inputs[name])
    return arrays


def decode_predict_request(body: Dict[str, Any], signature: Signature) -> PredictRequest:
    """Turns a ``:predict`` body into input arrays for ``signature`` (TF Serving's rules).

    Keys other than ``signature_name``, ``instances`` and ``inputs`` are ignored, as TF Serving
    ignores them.

    Raises:
      ServingError: the body does not follow the format or does not fit the signature's inputs.
    """
    if not signature.inputs:
        raise invalid("Failed to get input map for signature: %s"
                      % (body.get("signature_name") or "DEFAULT"))
    has_rows, has_cols = "instances" in body, "inputs" in body
    if has_rows and has_cols:
        raise invalid("JSON Value: %s Not formatted correctly expecting only one of 'inputs' or "
                      "'instances' keys to exist " % value_to_string(body))
    if has_rows:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise invalid("JSON Value: %s Expecting 'instances' to be an list/array"
                          % value_to_string(body))
        if not instances:
            raise invalid("JSON Value: %s No values in 'instances' array"
                          % value_to_string(body))
        return PredictRequest(_instances_to_arrays(instances, signature), True)
    if has_cols:
        return PredictRequest(_columns_to_arrays(body["inputs"], signature), False)
    raise invalid("Missing 'inputs' or 'instances' key")


# ---------------------------------------------------------------------------------------------
# arrays -> JSON values

def _bytes_to_json(value: bytes, as_b64: bool):
    if not as_b64:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            pass  # JSON strings are UTF-8: other bytes can only travel as base64
    return {_B64: base64.b64encode(value).decode("ascii")}


def to_json(array, key: str):
    """An output array as nested JSON values (TF Serving's number and string rules)."""
    array = np.asarray(array)
    if array.dtype.name == "bfloat16":
        array = array.astype(np.float32)
    kind = array.dtype.kind
    if array.dtype == np.dtype(object) or kind == "S":
        as_b64 = key.endswith("_bytes")
        flat = [_bytes_to_json(bytes(v), as_b64) for v in array.ravel()]
        if array.ndim == 0:
            return flat[0]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(array.shape).tolist()
    if kind == "f" and array.dtype.itemsize < 8:
        # The shortest decimal that reads back as the same float32 (TF Serving writes "0.1",
        # not float64's "0.10000000149011612").
        return array.astype(str).astype(np.float64).tolist()
    if kind == "c":
        raise invalid("output '%s' is complex (%s), which has no JSON form; TF Serving cannot "
                      "return it either" % (key, array.dtype))
    if kind not in "biuf":
        raise invalid("output '%s' has dtype %s, which has no JSON form" % (key, array.dtype))
    return array.tolist()


def encode_predict_response(outputs: Dict[str, np.ndarray], row_format: bool):
    """The JSON reply (``predictions`` or ``outputs``) for a predict request's outputs.

    Raises:
      ServingError: row format, but an output has no first dimension or they differ.
    """
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if row_format:
        batch = None
        for name in names:
            shape = np.shape(outputs[name])
            if not shape:
                raise invalid("Tensor name: %s has no shape information " % name)
            if batch is not None and shape[0] != batch:
                raise invalid("Tensor name: %s has inconsistent batch size: %d expecting: %d"
                              % (name, shape[0], batch))
            batch = shape[0]
        values = {name: to_json(outputs[name], name) for name in names}
        if len(names) == 1:
            return {"predictions": values[names[0]]}
        return {"predictions": [{name: values[name][i] for name in names}
                                for i in range(batch)]}
    values = {name: to_json(outputs[name], name) for name in names}
    if len(names) == 1:
        return {"outputs": values[names[0]]}
    return {"outputs": values}


def float_json(value) -> float:
    """One float32 score as the shortest decimal that reads back the same."""
    return float(str(np.float32(value)))
