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
from images.serving.batching import BatchQueue, BatchScheduler, BatchSizer, default_batch_sizes
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


def test_binary_instances_bare_and_named_and_the_common_batch_size():
    image_sig = sig(image_bytes=spec("image_bytes", object, "DT_STRING"))
    bare = codec.decode_predict_request({"instances": [{"b64": "AP8="}, {"b64": "YWI="}]},
                                        image_sig)
    named = codec.decode_predict_request(
        {"instances": [{"image_bytes": {"b64": "AP8="}}, {"image_bytes": "ab"}]}, image_sig)
    for request in (bare, named):
        assert request.row_format and request.rows == 2
        assert request.inputs["image_bytes"].tolist() == [b"\x00\xff", b"ab"]
    two = sig(x=F, k=I32)
    columns = codec.decode_predict_request({"inputs": {"x": [[1, 2], [3, 4.5]], "k": [7, 8]}},
                                           two)
    assert not columns.row_format and columns.rows == 2
    assert columns.inputs["x"].dtype == np.float32 and columns.inputs["k"].dtype == np.int32
    mixed = codec.decode_predict_request({"inputs": {"x": [[1, 2]], "k": [7, 8]}}, two)
    assert mixed.rows is None  # the inputs disagree on the first dimension: never merged


def test_string_outputs_are_text_or_base64_for_bytes_names():
    values = np.array([b"cat", b"\xff\x00"], dtype=object)
    assert codec.to_json(values, "label") == ["cat", {"b64": "/wA="}]
    assert codec.to_json(values, "encoded_bytes") == [{"b64": "Y2F0"}, {"b64": "/wA="}]


# -- classify on this project's image models -----------------------------------------------------

def image_model_signature(**outputs):
    return Signature("serving_default", "tensorflow/serving/predict",
                     {"image_bytes": spec("image_bytes", object, "DT_STRING")},
                     {k: TensorSpec(k, k + ":0", np.dtype(d), n, shape)
                      for k, (d, n, shape) in outputs.items()})


def test_classify_ranks_top_k_classes_with_their_probabilities():
    from images.serving.inference import image_model_outputs, rank_image_model
    signature = image_model_signature(top_k_classes=(np.int64, "DT_INT64", (-1, 2)),
                                      probabilities=(np.float32, "DT_FLOAT", (-1, 2)),
                                      classes=(np.int64, "DT_INT64", (-1,)))
    keys = image_model_outputs(signature)
    assert keys == ("top_k_classes", "probabilities")
    # The exporter's probabilities are the top-k ones, in the order of top_k_classes.
    outputs = {"top_k_classes": np.array([[1, 2], [0, 3]]),
               "probabilities": np.array([[.6, .2], [.5, .3]], np.float32)}
    result = rank_image_model(outputs, keys, 2)
    assert [[(c.label, round(c.score, 4)) for c in row.classes]
            for row in result.classifications] == [[("1", .6), ("2", .2)], [("0", .5), ("3", .3)]]
    # Probabilities over every class are read by class id.
    outputs["probabilities"] = np.array([[.1, .6, .2, .1], [.5, .1, .1, .3]], np.float32)
    result = rank_image_model(outputs, keys, 2)
    assert result.classifications[1].classes[1].score == pytest.approx(0.3)
    with pytest.raises(ServingError, match="returned 2 results for 3 examples"):
        rank_image_model(outputs, keys, 3)


def test_classify_ranks_probabilities_when_there_is_no_top_k():
    from images.serving.inference import image_model_outputs, rank_image_model
    signature = image_model_signature(probabilities=(np.float32, "DT_FLOAT", (-1, 3)))
    keys = image_model_outputs(signature)
    result = rank_image_model({"probabilities": np.array([[.2, .5, .3]], np.float32)}, keys, 1)
    assert [c.label for c in result.classifications[0].classes] == ["1", "2", "0"]
    embeddings = image_model_signature(embeddings=(np.float32, "DT_FLOAT", (-1, 8)))
    assert image_model_outputs(embeddings) is None


def test_classify_signature_gets_serialized_tf_examples_and_returns_tf_servings_result():
    from tensorflow.core.example import example_pb2
    from tensorflow_serving.apis import input_pb2

    from images.serving.inference import classification_result
    proto = examples.input_from_json(
        {"context": {"lang": "en"},
         "examples": [{"x": [1.5, 2.5], "n": 3, "img": {"b64": "AQ=="}}]},
        input_pb2.Input(), "classify")
    example = example_pb2.Example.FromString(examples.serialized_examples(proto)[0])
    feature = example.features.feature
    assert list(feature["x"].float_list.value) == [1.5, 2.5]
    assert list(feature["n"].int64_list.value) == [3]
    assert list(feature["img"].bytes_list.value) == [b"\x01"]
    assert list(feature["lang"].bytes_list.value) == [b"en"]
    result = classification_result(np.array([[b"cat", b"dog"]], dtype=object),
                                   np.array([[0.9, 0.1]], np.float32), 1)
    classes = result.classifications[0].classes
    assert classes[0].label == "cat" and classes[1].score == pytest.approx(0.1)
    with pytest.raises(ServingError, match="Expected scores output batch size of 2"):
        classification_result(None, np.array([[0.9, 0.1]], np.float32), 2)


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
    """y = 2x and s = the sum of each row; records the batch sizes it ran; fails on -1.

    Args:
      delay: seconds per run (``delay`` may be a function of the batch size).
      gate: an Event every run waits for (holds the batch threads).
    """

    def __init__(self, delay=0.0, gate=None):
        self.sizes, self.delay, self.gate = [], delay, gate
        self.lock = threading.Lock()

    def __call__(self, inputs, timeout_ms):
        if self.gate is not None:
            self.gate.wait(10)
        x = inputs["x"]
        with self.lock:
            self.sizes.append(len(x))
        time.sleep(self.delay(len(x)) if callable(self.delay) else self.delay)
        if (x == -1).any():
            raise ValueError("negative input")
        return {"y": x * 2, "s": x.reshape(len(x), -1).sum(axis=1)}


def submit_all(queue, values, deadline=None):
    return [queue.submit({"x": np.array(v, np.float32)}, len(v), deadline) for v in values]


@pytest.fixture
def scheduler():
    schedulers = []

    def make(threads=1):
        schedulers.append(BatchScheduler(threads, server_metrics()))
        return schedulers[-1]
    yield make
    for s in schedulers:
        s.close(10)


def test_waiting_requests_run_as_one_padded_batch_and_split_back(scheduler):
    gate = threading.Event()
    model = Model(gate=gate)
    queue = BatchQueue(scheduler(), model, "q", max_batch_size=8, allowed_batch_sizes=[8],
                       inline=False)
    first = submit_all(queue, [[[1.0, 1.0]]])  # occupies the only thread
    time.sleep(0.05)
    arrays = [np.full((n, 2), i, np.float32) for i, n in enumerate([1, 2, 3], 1)]
    futures = [queue.submit({"x": a}, len(a)) for a in arrays]
    gate.set()
    first[0].result(10)
    for a, f in zip(arrays, futures):
        out = f.result(10)
        np.testing.assert_array_equal(out["y"], a * 2)  # the padding is not handed back
        np.testing.assert_array_equal(out["s"], a.sum(1))
    assert model.sizes == [8, 8]  # 1 padded to 8, then 1 + 2 + 3 merged and padded to 8
    assert (queue.batches_run, queue.tasks_run, queue.rows_run) == (2, 4, 7)


def test_timeout_waits_for_more_requests_and_max_batch_size_caps_a_batch(scheduler):
    model = Model()
    queue = BatchQueue(scheduler(), model, "q", max_batch_size=4, batch_timeout_s=0.5,
                       allowed_batch_sizes=[4], inline=False)
    start = time.monotonic()
    for f in submit_all(queue, [[1.0]] * 6):
        f.result(10)
    # Four fill the first batch at once; the last two wait out the timeout together (padded).
    assert model.sizes == [4, 4]
    assert time.monotonic() - start >= 0.45


def test_requests_of_other_shapes_or_without_a_batch_size_never_merge(scheduler):
    gate = threading.Event()
    model = Model(gate=gate)
    queue = BatchQueue(scheduler(), model, "q", max_batch_size=32, allowed_batch_sizes=[32],
                       inline=False)
    hold = queue.submit({"x": np.ones((1, 2), np.float32)}, 1)
    time.sleep(0.05)
    a = queue.submit({"x": np.ones((2, 2), np.float32)}, 2)
    b = queue.submit({"x": np.ones((1, 5), np.float32)}, 1)       # another inner shape
    c = queue.submit({"x": np.ones((3, 2), np.float32)}, None)    # no shared batch dimension
    d = queue.submit({"x": np.ones((1, 2), np.float32)}, 1)
    gate.set()
    for f in (hold, a, b, c, d):
        f.result(10)
    assert model.sizes == [32, 32, 32, 3]  # (hold), (a + d), (b), (c) run alone and unpadded
    assert d.result()["y"].shape == (1, 2) and b.result()["y"].shape == (1, 5)


def test_a_bad_request_fails_alone_and_its_batch_mates_get_their_results(scheduler):
    gate = threading.Event()
    model = Model(gate=gate)
    queue = BatchQueue(scheduler(), model, "q", max_batch_size=4, allowed_batch_sizes=[4],
                       inline=False)
    hold = submit_all(queue, [[9.0]])
    time.sleep(0.05)
    futures = submit_all(queue, [[1.0], [-1.0], [3.0]])
    gate.set()
    assert hold[0].result(10)["y"].tolist() == [18.0]
    assert futures[0].result(10)["y"].tolist() == [2.0]
    assert futures[2].result(10)["y"].tolist() == [6.0]
    with pytest.raises(ValueError, match="negative"):
        futures[1].result(10)
    # [9] padded to 4; [1, -1, 3] merged and padded to 4, which fails; then one by one.
    assert model.sizes == [4, 4, 1, 1, 1]
    with pytest.raises(ServingError, match="Task size 5 is larger than maximum input batch"):
        submit_all(queue, [[1.0] * 5])


def test_a_request_runs_on_its_own_thread_while_a_batch_thread_is_free(scheduler):
    gate = threading.Event()
    model = Model(gate=gate)
    queue = BatchQueue(scheduler(1), model, "q", max_batch_size=8)
    callers = []

    def submit(value):
        callers.append(threading.current_thread())
        return queue.submit({"x": np.array([value], np.float32)}, 1)

    first = threading.Thread(target=submit, args=(1.0,))
    first.start()  # runs inline, held by the gate: it takes the only place
    time.sleep(0.1)
    assert first.is_alive() and queue.waiting == 0
    waiting = [submit(float(v)) for v in (2, 3, 4)]  # no place free: queued, not run here
    assert queue.waiting == 3 and not any(f.done() for f in waiting)
    gate.set()
    first.join(10)
    assert [f.result(10)["y"][0] for f in waiting] == [4.0, 6.0, 8.0]
    assert model.sizes[0] == 1 and sum(model.sizes) == 4  # the three queued ran on the thread
    done = submit(5.0)  # idle again: runs inline, the future is done on return
    assert done.done() and done.result()["y"].tolist() == [10.0]


def test_max_batch_size_one_runs_every_request_alone(scheduler):
    model = Model()
    queue = BatchQueue(scheduler(2), model, "q", max_batch_size=1)
    for f in submit_all(queue, [[1.0]] * 5):
        f.result(10)
    assert model.sizes == [1] * 5


def test_large_requests_split_and_full_queues_refuse_as_tf_serving(scheduler):
    model = Model()
    shared = scheduler(2)
    queue = BatchQueue(shared, model, "q", max_batch_size=10, enable_large_batch_splitting=True,
                       max_execution_batch_size=4)
    out = submit_all(queue, [list(np.arange(10.0))])[0].result(10)["y"]
    assert out.tolist() == list(np.arange(10.0) * 2) and max(model.sizes) <= 4
    gate = threading.Event()
    small = BatchQueue(shared, Model(gate=gate), "small", max_batch_size=1,
                       max_enqueued_batches=2, inline=False)
    running = submit_all(small, [[1.0]] * 2)  # one on each thread
    time.sleep(0.1)
    queued = submit_all(small, [[1.0]] * 2)
    assert small.waiting == 2
    with pytest.raises(ServingError, match="queue to which this task was submitted is full") as e:
        submit_all(small, [[1.0]])
    assert e.value.code == "UNAVAILABLE" and e.value.http_status == 503
    gate.set()
    small.close(10)  # runs what is queued before it returns
    assert all(f.done() and f.result()["y"].shape == (1,) for f in running + queued)
    with pytest.raises(ServingError, match="shutting down") as e:
        submit_all(small, [[1.0]])
    assert e.value.code == "UNAVAILABLE"


def test_a_request_past_its_deadline_is_not_run(scheduler):
    gate = threading.Event()
    model = Model(gate=gate)
    queue = BatchQueue(scheduler(), model, "q", max_batch_size=4, inline=False)
    hold = submit_all(queue, [[1.0]])
    time.sleep(0.05)
    late = submit_all(queue, [[2.0]], deadline=time.monotonic() + 0.05)[0]
    time.sleep(0.1)
    gate.set()
    hold[0].result(10)
    with pytest.raises(ServingError, match="longer than its deadline") as e:
        late.result(10)
    assert e.value.code == "DEADLINE_EXCEEDED" and model.sizes == [1]


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_batch_size=0), "max_batch_size"),
    (dict(batch_timeout_s=-1), "batch_timeout_s"),
    (dict(max_enqueued_batches=0), "max_enqueued_batches"),
])
def test_bad_queue_options_are_refused(scheduler, kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchQueue(scheduler(), Model(), "q", **kwargs)
    with pytest.raises(ValueError, match="num_batch_threads must be positive"):
        BatchScheduler(0, server_metrics())


# -- choosing the batch size ---------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def drive_sizer(sizer, clock, seconds_per_batch, batches, available=64, threads=2):
    """Runs ``batches`` batches on ``threads`` simulated threads; returns the sizes formed."""
    import heapq
    running, formed = [], []
    for i in range(threads):
        size, ticket = sizer.choose(available)
        heapq.heappush(running, (clock.now + seconds_per_batch(size), i, size, ticket))
        formed.append(size)
    for i in range(batches):
        end, _, size, ticket = heapq.heappop(running)
        clock.now = end
        sizer.done(ticket, size)
        size, ticket = sizer.choose(available)
        heapq.heappush(running, (clock.now + seconds_per_batch(size), threads + i, size,
                                 ticket))
        formed.append(size)
    return formed


def test_the_cap_climbs_while_larger_batches_serve_more_and_stops_where_they_do_not():
    assert default_batch_sizes(12) == [1, 2, 4, 8, 12]  # the sizes without allowed_batch_sizes
    clock = Clock()
    sizer = BatchSizer([1, 2, 4, 8, 16], window=4, min_seconds=0, clock=clock)
    assert sizer.cap == 1 and sizer.choose(1) == (1, sizer.choose(1)[1])
    # Per example: 1.0 s alone, less in batches up to 4, more at 8 and 16 (caches).
    cost = {1: 1.0, 2: 0.7, 4: 0.5, 8: 0.8, 16: 1.0}
    formed = drive_sizer(sizer, clock, lambda n: n * cost[n], 300)
    assert sizer.cap == 4
    assert sizer.throughput[8] < sizer.throughput[4]
    assert 16 not in formed  # never tried past the first size that lost
    assert formed[-20:] == [4] * 20


def test_the_cap_follows_a_cheaper_large_batch_and_retries_later():
    clock = Clock()
    sizer = BatchSizer([1, 2, 4, 8], window=4, min_seconds=0, retry_after=50, clock=clock)
    formed = drive_sizer(sizer, clock, lambda n: 0.1 + 0.01 * n, 200)  # overhead-bound
    assert sizer.cap == 8 and formed[-10:] == [8] * 10
    # The model got slower per example in large batches: a retry finds the smaller size.
    formed = drive_sizer(sizer, clock, lambda n: n * {1: 1.0, 2: 0.9, 4: 1.2, 8: 2.0}[n], 400)
    assert sizer.cap == 2, sizer.throughput


def test_a_window_lasts_its_batches_and_its_shortest_time():
    clock = Clock()
    sizer = BatchSizer([1, 2], window=2, min_seconds=1.0, clock=clock)
    tickets = [sizer.choose(8)[1] for _ in range(5)]
    assert len(set(map(id, tickets))) == 1  # five batches in 0 s: still the first window
    clock.now = 1.0
    size, last = sizer.choose(8)
    assert last is tickets[0] and last.closed and size == 1
    size, following = sizer.choose(8)
    assert following is not last and size == 2  # the next window takes the other size


def test_short_queues_say_nothing_about_the_sizes():
    clock = Clock()
    sizer = BatchSizer([1, 2, 4], window=4, min_seconds=0, clock=clock)
    drive_sizer(sizer, clock, lambda n: 1.0, 100, available=1)  # one client: never a full 2
    assert sizer.cap == 1 and not sizer.throughput
    # A failed batch (run again one by one) does not count either.
    size, ticket = sizer.choose(8)
    sizer.done(ticket, size, ok=False)
    assert not sizer.throughput


def test_concurrent_requests_merge_once_merging_pays(scheduler):
    """A model whose runs cost mostly a fixed overhead: the queue climbs to larger batches."""
    model = Model(delay=lambda n: 0.01 + 0.0005 * n)
    queue = BatchQueue(scheduler(2), model, "q", max_batch_size=16, max_enqueued_batches=100,
                       inline=False)
    queue.sizer = BatchSizer(queue.sizes, window=4, min_seconds=0.05)  # short trials
    futures = submit_all(queue, [[float(i)] for i in range(400)])
    assert [f.result(30)["y"][0] for f in futures] == [2.0 * i for i in range(400)]
    assert model.sizes[0] == 1 and max(model.sizes) >= 8, model.sizes
    assert queue.sizer.cap >= 8
