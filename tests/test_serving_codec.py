"""TF Serving's JSON formats <-> arrays, checked against hand-made signatures (no model needed)."""
import base64

import numpy as np
import pytest

from images.serving import codec
from images.serving.codec import RequestError
from images.serving.signatures import CLASSIFY_METHOD, PREDICT_METHOD, Signature, TensorSpec


def spec(key, dtype, shape, name=None):
    dtype = np.dtype(dtype)
    names = {"O": "DT_STRING", "f4": "DT_FLOAT", "i8": "DT_INT64", "u1": "DT_UINT8",
             "b1": "DT_BOOL", "i4": "DT_INT32"}
    return TensorSpec(key, name or key + ":0", dtype,
                      names["O" if dtype == object else dtype.str[1:]], shape)


IMAGE_SIG = Signature("serving_default", PREDICT_METHOD,
                      {"image_bytes": spec("image_bytes", object, (-1,))},
                      {"classes": spec("classes", "i8", (-1,)),
                       "probabilities": spec("probabilities", "f4", (-1, 4)),
                       "top_k_classes": spec("top_k_classes", "i8", (-1, 2))})
TWO_INPUTS = Signature("two", PREDICT_METHOD,
                       {"x": spec("x", "f4", (-1, 2)), "k": spec("k", "i4", (-1,))},
                       {"y": spec("y", "f4", (-1, 2))})


def b64(data):
    return {"b64": base64.b64encode(data).decode()}


def test_row_format_bare_and_named_binary_instances():
    bare = codec.decode_predict_request({"instances": [b64(b"\x00\xff"), b64(b"ab")]}, IMAGE_SIG)
    named = codec.decode_predict_request(
        {"instances": [{"image_bytes": b64(b"\x00\xff")}, {"image_bytes": "ab"}]}, IMAGE_SIG)
    for request in (bare, named):
        assert request.row_format and request.rows == 2
        assert request.inputs["image_bytes"].tolist() == [b"\x00\xff", b"ab"]


def test_columnar_format_and_common_batch_size():
    request = codec.decode_predict_request(
        {"inputs": {"x": [[1, 2], [3, 4.5]], "k": [7, 8]}}, TWO_INPUTS)
    assert not request.row_format and request.rows == 2
    assert request.inputs["x"].dtype == np.float32
    np.testing.assert_array_equal(request.inputs["k"], np.array([7, 8], np.int32))
    mixed = codec.decode_predict_request({"inputs": {"x": [[1, 2]], "k": [7, 8]}}, TWO_INPUTS)
    assert mixed.rows is None  # inputs disagree on the first dimension: cannot be merged


@pytest.mark.parametrize("body, message", [
    ({"instances": [5]}, "takes strings"),
    ({"instances": [{"b64": "***"}]}, "invalid base64"),
    ({"instances": []}, "empty"),
    ({"instances": [b64(b"x")], "inputs": [b64(b"x")]}, "exactly one"),
    ({}, "exactly one"),
    ({"instances": [{"image": "x"}]}, "unknown input"),
    ({"instances": [b64(b"x")], "extra": 1}, "unknown field"),
    ({"instances": {"image_bytes": "x"}}, "must be a list"),
    ({"inputs": [["a", "b"], ["c"]]}, "ragged"),
    ({"inputs": [["a"]]}, "has shape [1, 1]"),
])
def test_bad_image_requests(body, message):
    with pytest.raises(RequestError) as err:
        codec.decode_predict_request(body, IMAGE_SIG)
    assert message in err.value.message and err.value.status_code == 400


@pytest.mark.parametrize("body, message", [
    ({"instances": [{"x": [1, 2]}]}, "lacks input(s) 'k'"),
    ({"instances": [[1, 2]]}, "must be an object naming them"),
    ({"instances": [{"x": ["a", "b"], "k": 1}]}, "takes DT_FLOAT numbers; got strings"),
    ({"instances": [{"x": [1, 2], "k": 1.5}]}, "takes integers (DT_INT32); got 1.5"),
    ({"instances": [{"x": [1, 2], "k": 2 ** 40}]}, "out of range"),
    ({"instances": [{"x": [1, 2, 3], "k": 1}]}, "an instance must have shape [2]"),
    ({"instances": [{"x": [1, 2], "k": 1}, {"x": [1], "k": 1}]}, "ragged"),
    ({"instances": [{"x": [None, 2], "k": 1}]}, "non-numeric"),
    ({"inputs": [[1, 2]]}, "must be an object naming the 2 inputs"),
    ({"inputs": {"x": [[1, 2]]}}, "lacks 'k'"),
    ({"inputs": {"x": [[1e39, 2]], "k": [1]}}, "too large"),
])
def test_bad_numeric_requests(body, message):
    with pytest.raises(RequestError) as err:
        codec.decode_predict_request(body, TWO_INPUTS)
    assert message in err.value.message


def test_integral_floats_are_accepted_for_integer_inputs():
    request = codec.decode_predict_request({"instances": [{"x": [1, 2], "k": 3.0}]}, TWO_INPUTS)
    assert request.inputs["k"].tolist() == [3] and request.inputs["k"].dtype == np.int32


def test_responses_in_both_formats():
    outputs = {"classes": np.array([1, 0], np.int64),
               "probabilities": np.array([[.1, .7, .1, .1], [.4, .3, .2, .1]], np.float32),
               "top_k_classes": np.array([[1, 0], [0, 1]], np.int64)}
    rows = codec.PredictRequest({}, True, 2)
    reply = codec.encode_predict_response(outputs, rows)
    assert reply["predictions"][1]["classes"] == 0
    assert reply["predictions"][0]["top_k_classes"] == [1, 0]
    assert np.float32(reply["predictions"][0]["probabilities"][1]) == np.float32(0.7)
    cols = codec.encode_predict_response(outputs, codec.PredictRequest({}, False, 2))
    assert cols["outputs"]["classes"] == [1, 0]
    single = codec.encode_predict_response({"e": np.zeros((2, 3), np.float32)}, rows)
    assert single == {"predictions": [[0.0] * 3] * 2}
    with pytest.raises(RequestError, match="columnar"):
        codec.encode_predict_response({"total": np.float32(3.0)}, rows)


def test_string_outputs_are_text_or_base64_for_bytes_names():
    values = np.array([b"cat", b"\xff\x00"], dtype=object)
    assert codec.to_json(values, "label") == ["cat", b64(b"\xff\x00")]
    assert codec.to_json(values, "encoded_bytes") == [b64(b"cat"), b64(b"\xff\x00")]


def test_classify_with_top_k_and_probabilities():
    inputs, rows = codec.decode_classify_request(
        {"examples": [{"image_bytes": b64(b"x")}, {"image_bytes": b64(b"y")}]}, IMAGE_SIG, "m")
    assert rows == 2 and inputs["image_bytes"].tolist() == [b"x", b"y"]
    outputs = {"probabilities": np.array([[.1, .6, .2, .1], [.5, .1, .1, .3]], np.float32),
               "top_k_classes": np.array([[1, 2], [0, 3]], np.int64),
               "classes": np.array([1, 0])}
    results = codec.encode_classify_response(outputs, IMAGE_SIG)["results"]
    assert [[label for label, _ in r] for r in results] == [["1", "2"], ["0", "3"]]
    assert results[1][1][1] == pytest.approx(0.3)  # all classes' probabilities: by class id
    # The exporter's probabilities are the top-k ones, in the order of top_k_classes.
    outputs["probabilities"] = np.array([[.6, .2], [.5, .3]], np.float32)
    results = codec.encode_classify_response(outputs, IMAGE_SIG)["results"]
    assert results == [[["1", pytest.approx(.6)], ["2", pytest.approx(.2)]],
                       [["0", pytest.approx(.5)], ["3", pytest.approx(.3)]]]


def test_classify_ranks_probabilities_when_there_is_no_top_k():
    sig = Signature("s", PREDICT_METHOD, IMAGE_SIG.inputs,
                    {"probabilities": spec("probabilities", "f4", (-1, 3))})
    results = codec.encode_classify_response(
        {"probabilities": np.array([[.2, .5, .3]], np.float32)}, sig)["results"]
    assert [label for label, _ in results[0]] == ["1", "2", "0"]


def test_classify_refuses_embedding_models_and_says_why():
    sig = Signature("serving_default", PREDICT_METHOD, IMAGE_SIG.inputs,
                    {"embeddings": spec("embeddings", "f4", (-1, 8))})
    with pytest.raises(RequestError, match="embedding model: it returns embeddings, not classes"):
        codec.decode_classify_request({"examples": [{"image_bytes": "x"}]}, sig, "face")


@pytest.mark.parametrize("body, message", [
    ({}, "needs \"examples\""),
    ({"examples": []}, "non-empty list"),
    ({"examples": ["x"]}, "must be an object"),
    ({"examples": [{"image_bytes": "x"}], "context": {"image_bytes": "y"}}, "repeats context"),
    ({"examples": [{"image_bytes": "x"}], "instances": []}, "unknown field"),
])
def test_bad_classify_requests(body, message):
    with pytest.raises(RequestError, match=message.replace("(", r"\(")):
        codec.decode_classify_request(body, IMAGE_SIG, "m")


def test_classify_signature_gets_serialized_tf_examples():
    from tensorflow.core.example import example_pb2
    sig = Signature("c", CLASSIFY_METHOD, {"inputs": spec("inputs", object, (-1,))},
                    {"classes": spec("classes", object, (-1, 2)),
                     "scores": spec("scores", "f4", (-1, 2))})
    inputs, rows = codec.decode_classify_request(
        {"context": {"lang": "en"}, "examples": [{"x": [1.5, 2], "n": 3, "img": b64(b"\x01")}]},
        sig, "m")
    example = example_pb2.Example.FromString(inputs["inputs"][0])
    feature = example.features.feature
    assert rows == 1
    assert list(feature["x"].float_list.value) == [1.5, 2.0]
    assert list(feature["n"].int64_list.value) == [3]
    assert list(feature["img"].bytes_list.value) == [b"\x01"]
    assert list(feature["lang"].bytes_list.value) == [b"en"]
    results = codec.encode_classify_response(
        {"classes": np.array([[b"cat", b"dog"]], dtype=object),
         "scores": np.array([[0.9, 0.1]], np.float32)}, sig)["results"]
    assert results[0][0][0] == "cat" and results[0][1][1] == pytest.approx(0.1)
