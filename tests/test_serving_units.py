"""The server's parts alone: JSON tensors and examples (TF Serving's rules), the batch scheduler,
image headers, config files.  No server, no network."""
import io
import json
import struct
import threading
import time
import zlib

import numpy as np
import pytest

from images.serving import codec, config, examples
from images.serving.batching import BatchQueue, BatchScheduler, default_batch_sizes
from images.serving.errors import ServingError
from images.serving.image_limits import check_images, image_size
from images.serving.metrics import server_metrics
from images.serving.signatures import Signature, TensorSpec


def spec(key, dtype, name):
    return TensorSpec(key, key + ":0", np.dtype(dtype), name, None)


def sig(**inputs):
    return Signature("s", "tensorflow/serving/predict", {k: v for k, v in inputs.items()}, {})


F = spec("x", np.float32, "DT_FLOAT")
I32 = spec("x", np.int32, "DT_INT32")
S = spec("s", object, "DT_STRING")


# -- JSON -> tensors (json_tensor.cc) ------------------------------------------------------------

def test_row_and_columnar_formats_read_shapes_from_the_lists():
    got = codec.decode_predict_request({"instances": [[1, 2], [3, 4], [5, 6]]}, sig(x=I32))
    assert got.row_format and got.inputs["x"].dtype == np.int32
    np.testing.assert_array_equal(got.inputs["x"], [[1, 2], [3, 4], [5, 6]])
    mixed = codec.decode_predict_request({"instances": [1, 2.0, 3, 5.003]}, sig(x=F))
    np.testing.assert_allclose(mixed.inputs["x"], [1, 2, 3, 5.003], rtol=1e-6)
    cols = codec.decode_predict_request({"inputs": 1.0, "ignored_key": 7}, sig(x=F))
    assert not cols.row_format and cols.inputs["x"].shape == ()
    big = codec.decode_predict_request({"instances": [1e300, -1e300]}, sig(x=F))
    assert np.isinf(big.inputs["x"]).all()  # TF Serving: beyond float's range is +-inf
    both = codec.decode_predict_request(
        {"instances": [{"x": [1.0], "s": "a"}, {"x": [2.0], "s": {"b64": "aGk="}}]},
        sig(x=F, s=S))
    assert both.inputs["s"].tolist() == [b"a", b"hi"]


@pytest.mark.parametrize("body, message", [
    ({"instances": [[1, 2], [3, 4], [5, 6, 7]]}, "Expecting tensor size"),
    ({"instances": [[1, 2], [3, 4], [[5, 6]]]}, "Expecting shape"),
    ({"instances": [1, [1]]}, "Expecting shape"),
    ({"instances": [[1, 2], ["a", "b"]]}, "not of expected type: int32"),
    ({"instances": [1.5]}, "not of expected type: int32"),
    ({"instances": [True]}, "not of expected type: int32"),
    ({"instances": [2 ** 40]}, "out of the range"),
    ({"instances": [1], "inputs": [1]}, "Not formatted correctly"),
    ({"instances": []}, "No values in 'instances' array"),
    ({"instances": {"x": 1}}, "to be an list/array"),
    ({}, "Missing 'inputs' or 'instances' key"),
    ({"inputs": [[[1]], [2]]}, "incorrect level"),
    ({"inputs": [[1], [[1]]]}, "unexpected level"),
    ({"inputs": json.loads("[" * 33 + "1" + "]" * 33)}, "nested more than 32"),
])
def test_bad_int_tensors_get_tf_servings_messages(body, message):
    with pytest.raises(ServingError, match=message) as err:
        codec.decode_predict_request(body, sig(x=I32))
    assert err.value.http_status == 400


def test_named_inputs_errors():
    two = sig(x=I32, s=S)
    for body, message in [
            ({"instances": [{"x": 1, "s": "a"}, [1, 2]]}, "Expecting object but got list"),
            ({"instances": [[1], {"x": 1}]}, "plain list, but expecting list of objects"),
            ({"instances": [{"x": 1}]}, "keys must be equal to: s,x"),
            ({"instances": [{"x": 1, "s": "a", "y": 2}]}, "does not have named input: y"),
            ({"inputs": {"x": [1]}}, "Missing named input: s"),
            ({"inputs": [1]}, "plain value/list, but expecting an object"),
            ({"inputs": {"x": [1], "s": {"b64": "***"}}}, "Unable to base64 decode"),
            ({"inputs": {"x": [1], "s": {"b64": 1}}}, "not formatted correctly for base64"),
            ({"inputs": {"x": [1], "s": [None]}}, "Type: Null is not of expected type: string")]:
        with pytest.raises(ServingError, match=message):
            codec.decode_predict_request(body, two)


def test_body_parsing():
    assert codec.parse_body(b'{"a": NaN}')["a"] != codec.parse_body(b'{"a": NaN}')["a"]
    for body, message in [(b"", "The document is empty"), (b"instances = [1, 2]",
                                                          "JSON Parse error"),
                          (b"[1]", "Is not object"), (b"[" * 100000 + b"]" * 100000,
                                                      "JSON Parse error")]:
        with pytest.raises(ServingError, match=message):
            codec.parse_body(body)
    raw = codec.parse_body(b'{"s": "\xff\xfe"}')  # not UTF-8: the bytes travel through
    assert codec.text_bytes(raw["s"]) == b"\xff\xfe"
    with pytest.raises(ServingError, match="'signature_name' key must be a string value"):
        codec.signature_name_of({"signature_name": 100})


def test_outputs_are_written_as_tf_serving_writes_them():
    out = codec.encode_predict_response({"y": np.array([[2.5, 3.0], [0.1, np.nan]], np.float32)},
                                        True)
    assert out["predictions"][0] == [2.5, 3.0] and out["predictions"][1][0] == 0.1
    assert np.isnan(out["predictions"][1][1])
    two = codec.encode_predict_response({"a": np.array([1, 2]), "b_bytes": np.array(
        [b"\x00", b"z"], dtype=object)}, True)
    assert two == {"predictions": [{"a": 1, "b_bytes": {"b64": "AA=="}},
                                   {"a": 2, "b_bytes": {"b64": "eg=="}}]}
    assert codec.encode_predict_response({"y": np.float32(3.5)}, False) == {"outputs": 3.5}
    with pytest.raises(ServingError, match="has no shape information"):
        codec.encode_predict_response({"y": np.float32(3.5)}, True)
    with pytest.raises(ServingError, match="inconsistent batch size"):
        codec.encode_predict_response({"a": np.zeros(2), "b": np.zeros(3)}, True)
    assert codec.encode_predict_response({"a": np.zeros((0, 3))}, True) == {"predictions": []}


# -- examples (classify / regress bodies) --------------------------------------------------------

def test_examples_with_context_follow_tf_servings_feature_rules():
    from tensorflow_serving.apis import input_pb2
    body = {"signature_name": "custom", "context": {"query": "pizza", "location": ["sfo"]},
            "examples": [{"names": ["foo", "bar"], "ratings": [8.0, 9.0, float("nan")],
                          "age": 20},
                         {"names": ["baz", {"b64": "aGVsbG8="}], "ratings": 6.0,
                          "intboolmix": [1, True, False]}]}
    proto = examples.input_from_json(body, input_pb2.Input(), "classify")
    lists = proto.example_list_with_context
    assert list(lists.context.features.feature["location"].bytes_list.value) == [b"sfo"]
    second = lists.examples[1].features.feature
    assert list(second["names"].bytes_list.value) == [b"baz", b"hello"]
    assert list(second["intboolmix"].int64_list.value) == [1, 1, 0]
    assert list(lists.examples[0].features.feature["age"].int64_list.value) == [20]
    serialized = examples.serialized_examples(proto)
    assert serialized[0].startswith(lists.context.SerializeToString())


@pytest.mark.parametrize("body, message", [
    ({"signature_name": ["hello"], "examples": [{}]}, "must be a string"),
    ({"context": [{"names": ["foo"]}]}, "Example must be JSON object"),
    ({"examples": {"names": ["foo"]}}, "list/array"),
    ({"examples": [[{"names": ["foo"]}]]}, "Example must be JSON object"),
    ({"examples": [{"names": [10, None]}]}, "names has element with unexpected JSON type: Null"),
    ({"examples": [{"names": [10, 10.0]}]}, "feature: names expecting type: int64"),
    ({"examples": [{"names": [10, {"test": 10}]}]}, "unexpected JSON type: Object"),
    ({"examples": [{"names": [[10], 20]}]}, "unexpected JSON type: Array"),
    ({"examples": [{"names": [20, 18446744073709551603]}]}, "Only int64_t is supported"),
    ({"examples": []}, "empty array"),
    ({}, "key 'examples' is expected"),
])
def test_bad_examples(body, message):
    from tensorflow_serving.apis import input_pb2
    with pytest.raises(ServingError, match=message):
        codec.signature_name_of(body)
        examples.input_from_json(body, input_pb2.Input(), "classify")


def test_an_integer_beyond_uint64_is_a_float_as_in_rapidjson():
    from tensorflow_serving.apis import input_pb2
    proto = examples.input_from_json({"examples": [{"x": 2 ** 70}]}, input_pb2.Input(), "regress")
    assert proto.example_list.examples[0].features.feature["x"].float_list.value[0] == 2.0 ** 70


# -- image headers -------------------------------------------------------------------------------

def png_header(width, height):
    """A PNG whose header claims width x height; the pixel data is a tiny stub."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(
        ">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 16


def test_image_sizes_come_from_headers():
    from PIL import Image
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP"):
        buf = io.BytesIO()
        Image.new("RGB", (37, 21)).save(buf, format=fmt)
        found = image_size(buf.getvalue())
        assert found is not None and found[1:3] == (37, 21), (fmt, found)
    frames = [Image.new("RGB", (10, 10), (80 * i, 0, 0)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert image_size(buf.getvalue())[3] == 3
    with pytest.raises(ServingError, match="12000x12000 pixels.*--max_image_pixels"):
        check_images([png_header(12000, 12000)], 25_000_000)
    check_images([png_header(100, 100), b"not an image"], 25_000_000)


# -- config files --------------------------------------------------------------------------------

def test_model_config_file(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("""model_config_list {
      config { name: "a" base_path: "/m/a" model_platform: "tensorflow"
               model_version_policy { specific { versions: 1 versions: 3 } }
               version_labels { key: "stable" value: 1 } }
      config { name: "b" base_path: "/m/b" model_platform: "tensorflow"
               model_version_policy { latest { num_versions: 2 } } }
      config { name: "c" base_path: "/m/c" model_platform: "tensorflow"
               model_version_policy { all {} } } }""")
    a, b, c = config.read_model_config(str(path))
    assert a.policy.aspired([1, 2, 3, 4]) == [1, 3] and a.label_map == {"stable": 1}
    assert b.policy.aspired([1, 2, 3, 4]) == [3, 4] and c.policy.aspired([1, 2]) == [1, 2]
    for text, message in [
            ('model_config_list { config { name: "a" base_path: "rel" model_platform: '
             '"tensorflow" } }', "absolute path"),
            ('model_config_list { config { name: "a" base_path: "/a" } }', "model_platform"),
            ('model_config_list { config { name: "a" base_path: "/a" model_platform: '
             '"tensorflow" } config { name: "a" base_path: "/b" model_platform: "tensorflow" } }',
             "multiple times"),
            ('model_config_list { config { nam: "a" } }', "no field named \"nam\"")]:
        path.write_text(text)
        with pytest.raises(config.ConfigError, match=message):
            config.read_model_config(str(path))
    batching = tmp_path / "batching.config"
    batching.write_text("max_batch_size { value: 8 } allowed_batch_sizes: 4 allowed_batch_sizes: 6")
    with pytest.raises(config.ConfigError, match="must match max_batch_size"):
        config.read_batching_parameters(str(batching))


# -- the batch scheduler -------------------------------------------------------------------------

class Model:
    """y = 2x; records the batch sizes it ran; fails on a negative input."""

    def __init__(self, delay=0.0):
        self.sizes, self.delay = [], delay
        self.lock = threading.Lock()

    def __call__(self, inputs, timeout_ms):
        x = inputs["x"]
        with self.lock:
            self.sizes.append(len(x))
        time.sleep(self.delay)
        if (x < 0).any():
            raise ValueError("negative input")
        return {"y": x * 2}


def submit_all(queue, values, deadline=None):
    return [queue.submit({"x": np.array(v, np.float32)}, len(v), deadline) for v in values]


def test_waiting_requests_merge_in_power_of_two_sizes_and_split_back():
    assert default_batch_sizes(12) == [1, 2, 4, 8, 12]
    model = Model(delay=0.2)
    scheduler = BatchScheduler(1, server_metrics())
    queue = BatchQueue(scheduler, model, "q", max_batch_size=32)
    first = submit_all(queue, [[0.0]])  # occupies the thread while 13 more arrive
    time.sleep(0.05)
    rest = submit_all(queue, [[float(i)] for i in range(1, 14)])
    results = [f.result(10)["y"][0] for f in first + rest]
    assert results == [2.0 * i for i in range(14)]
    assert model.sizes == [1, 8, 4, 1]
    scheduler.close()


def test_allowed_sizes_pad_and_a_bad_request_fails_alone():
    model = Model(delay=0.2)
    scheduler = BatchScheduler(1, server_metrics())
    queue = BatchQueue(scheduler, model, "q", max_batch_size=4, allowed_batch_sizes=[2, 4])
    submit_all(queue, [[9.0]])
    time.sleep(0.05)
    futures = submit_all(queue, [[1.0], [-1.0], [3.0]])
    assert futures[0].result(10)["y"].tolist() == [2.0]
    assert futures[2].result(10)["y"].tolist() == [6.0]
    with pytest.raises(ValueError, match="negative"):
        futures[1].result(10)
    # [9] padded to 2; then 1 and -1 merged (and, failing, re-run alone); 3 padded to 2.
    assert model.sizes == [2, 2, 1, 1, 2]
    with pytest.raises(ServingError, match="Task size 5 is larger than maximum input batch"):
        submit_all(queue, [[1.0] * 5])
    scheduler.close()


def test_large_requests_split_and_full_queues_refuse():
    model = Model()
    scheduler = BatchScheduler(2, server_metrics())
    queue = BatchQueue(scheduler, model, "q", max_batch_size=10, enable_large_batch_splitting=True,
                       max_execution_batch_size=4)
    out = submit_all(queue, [list(np.arange(10.0))])[0].result(10)["y"]
    assert out.tolist() == list(np.arange(10.0) * 2) and max(model.sizes) <= 4
    slow = Model(delay=0.3)
    small = BatchQueue(scheduler, slow, "small", max_batch_size=1, max_enqueued_batches=1)
    for _ in range(3):  # one running on each thread, then one waiting
        submit_all(small, [[1.0]])
        time.sleep(0.05)
    with pytest.raises(ServingError, match="queue to which this task was submitted is full") as e:
        submit_all(small, [[1.0]])
    assert e.value.code == "UNAVAILABLE"
    scheduler.close()


def test_merging_stops_when_it_does_not_pay():
    scheduler = BatchScheduler(1, server_metrics())
    queue = BatchQueue(scheduler, Model(), "q", max_batch_size=8)
    queue.cost = {1: 1.0, 2: 2.5, 4: 5.0}  # per example: merged batches cost more
    assert queue._target_size(4) == 1
    queue.cost = {1: 1.0, 2: 1.5, 4: 2.0}
    assert queue._target_size(4) == 4
    scheduler.close()
