"""``tf.Example`` inputs of Classify, Regress and MultiInference.

A REST ``:classify``/``:regress`` body (``{"context": {...}, "examples": [{...}, ...]}``) becomes
TF Serving's ``Input`` proto here with its rules (api_rest.md; util/json_tensor.cc), so REST and
gRPC requests take one path from there: each example is serialized (a shared context's bytes
placed before each example's, as TF Serving does, so an example's feature overrides the context's
of the same name) and fed to the signature's single string input.
"""
from typing import Any, Dict, List

from images.serving import codec
from images.serving.errors import invalid

_INT64_MAX = 2 ** 63 - 1
_INT64_MIN = -2 ** 63
_UINT64_MAX = 2 ** 64 - 1


def _kind_error(name, feature):
    kind = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}.get(
        feature.WhichOneof("kind"), "UNKNOWN")
    return invalid("Unexpected element type in feature: %s expecting type: %s" % (name, kind))


def _add_value(value, name, feature):
    kind = feature.WhichOneof("kind")
    if value is None or isinstance(value, list) or (
            isinstance(value, dict) and not codec.is_b64(value)):
        raise invalid("Feature: %s has element with unexpected JSON type: %s"
                      % (name, codec.json_type(value)))
    if isinstance(value, bool):
        if kind not in (None, "int64_list"):
            raise _kind_error(name, feature)
        feature.int64_list.value.append(1 if value else 0)
    elif isinstance(value, (str, dict)):
        if kind not in (None, "bytes_list"):
            raise _kind_error(name, feature)
        data = codec.decode_b64(value) if isinstance(value, dict) else codec.text_bytes(value)
        feature.bytes_list.value.append(data)
    elif isinstance(value, int) and _INT64_MIN <= value <= _UINT64_MAX:
        if kind not in (None, "int64_list"):
            raise _kind_error(name, feature)
        if value > _INT64_MAX:
            raise invalid("Feature: %s has uint64_t element. Only int64_t is supported." % name)
        feature.int64_list.value.append(value)
    else:  # a float, or an integer no 64-bit type holds (JSON parsers read those as doubles)
        if kind not in (None, "float_list"):
            raise _kind_error(name, feature)
        feature.float_list.value.append(float(value))


def example_from_json(obj, example):
    """Fills the ``tf.train.Example`` proto ``example`` from one JSON example object."""
    if not isinstance(obj, dict):
        raise invalid("Example must be JSON object but got JSON %s" % codec.json_type(obj))
    for name, content in obj.items():
        feature = example.features.feature[name]
        for value in content if isinstance(content, list) else [content]:
            _add_value(value, name, feature)


def input_from_json(body: Dict[str, Any], input_proto, method: str):
    """Fills TF Serving's ``Input`` proto from a ``:classify``/``:regress`` body.

    Raises:
      ServingError: malformed context or examples.
    """
    has_context = "context" in body
    if has_context:
        example_from_json(body["context"], input_proto.example_list_with_context.context)
    if "examples" not in body:
        raise invalid("JSON Value: %s When method is %s, key 'examples' is expected and was not "
                      "found" % (codec.value_to_string(body), method))
    examples = body["examples"]
    if not isinstance(examples, list):
        raise invalid("JSON Value: %s Expecting 'examples' value to be an list/array"
                      % codec.value_to_string(body))
    if not examples:
        raise invalid("JSON Value: %s 'examples' value is an empty array"
                      % codec.value_to_string(body))
    target = (input_proto.example_list_with_context.examples if has_context
              else input_proto.example_list.examples)
    for obj in examples:
        example_from_json(obj, target.add())
    return input_proto


def _examples(input_proto):
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        return None, list(input_proto.example_list.examples)
    if kind == "example_list_with_context":
        lists = input_proto.example_list_with_context
        return lists.context, list(lists.examples)
    raise invalid("Input is empty.")


def serialized_examples(input_proto) -> List[bytes]:
    """The examples as the serialized strings fed to a classify/regress signature."""
    context, examples = _examples(input_proto)
    if not examples:
        raise invalid("Input is empty.")
    prefix = context.SerializeToString() if context is not None else b""
    return [prefix + e.SerializeToString() for e in examples]


def bytes_values(input_proto):
    """Every bytes feature value of the input (for the image-size check)."""
    context, examples = _examples(input_proto)
    for example in ([context] if context is not None else []) + examples:
        for feature in example.features.feature.values():
            if feature.WhichOneof("kind") == "bytes_list":
                yield from feature.bytes_list.value


def examples_as_instances(input_proto) -> List[Dict[str, Any]]:
    """The examples as row-format instances (one value per feature, a list for several).

    Used for signatures that take named inputs rather than serialized examples (the exported
    image models); the context's features are merged into every example.
    """
    from tensorflow.core.example import example_pb2
    instances = []
    for data in serialized_examples(input_proto):
        example = example_pb2.Example.FromString(data)
        row = {}
        for name, feature in example.features.feature.items():
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value) if kind else []
            row[name] = values[0] if len(values) == 1 else values
        instances.append(row)
    return instances
