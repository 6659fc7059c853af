"""The model server end to end, as a drop-in for TensorFlow Serving.

One ``python -m images.serving`` process serves four models from a ``--model_config_file``:
half_plus_two (two versions on disk, version 123 served by a ``specific`` policy and labelled
``Version_Label``, as in TF Serving's HTTP handler tests), half_plus_three (the REST document's
example), a toy image classifier and a toy embedding model (``face``, which PLSC's route runs),
with batching on.  It is driven with TF Serving's REST examples and handler-test cases, with the
``tensorflow-serving-api`` gRPC client on every RPC, and with a sweep of malformed requests, after
which it must still answer correctly.
"""
import base64
import io
import json
import os
import signal
import socket
import subprocess
import time

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, inference_pb2, model_management_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

from conftest import PYTHON, ROOT
from images.serving.example_models import write_all
from images.serving.toy_model import save_toy_model

TWO = "saved_model_half_plus_two_2_versions"
THREE = "saved_model_half_plus_three"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(log_path, *flags, wait_model=TWO):
    grpc_port, rest_port = free_port(), free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [PYTHON, "-m", "images.serving", "--host=127.0.0.1", "--port=%d" % grpc_port,
         "--rest_api_port=%d" % rest_port] + list(flags),
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdout=log, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % rest_port
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get("%s/v1/models/%s" % (url, wait_model), timeout=2).status_code == 200:
                return proc, url, "127.0.0.1:%d" % grpc_port
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start:\n" + open(log_path).read()[-4000:])


def image_bytes(seed, size=(20, 24)):
    pixels = np.random.RandomState(seed).randint(0, 256, (size[0], size[1], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def b64(data):
    return {"b64": base64.b64encode(data).decode()}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfs")
    two, three = write_all(str(root))
    os.rename(two, str(root / TWO))
    toy = save_toy_model(str(root / "toy"), 1, kind="classifier", num_classes=5, seed=0)
    face = save_toy_model(str(root / "face"), 1, kind="embedding", seed=1)
    models = root / "models.config"
    models.write_text("""model_config_list {
      config { name: "%s" base_path: "%s" model_platform: "tensorflow"
               model_version_policy { specific { versions: 123 } }
               version_labels { key: "Version_Label" value: 123 } }
      config { name: "%s" base_path: "%s" model_platform: "tensorflow" }
      config { name: "toy" base_path: "%s" model_platform: "tensorflow" }
      config { name: "face" base_path: "%s" model_platform: "tensorflow" } }
    """ % (TWO, root / TWO, THREE, three, os.path.dirname(toy), os.path.dirname(face)))
    (root / "monitoring.config").write_text("prometheus_config { enable: true }")
    (root / "batching.config").write_text("max_batch_size { value: 16 }\n"
                                          "batch_timeout_micros { value: 2000 }")
    log_path = str(root / "server.log")
    proc, url, target = start_server(
        log_path, "--model_config_file=%s" % models, "--enable_batching",
        "--batching_parameters_file=%s" % (root / "batching.config"),
        "--monitoring_config_file=%s" % (root / "monitoring.config"),
        "--file_system_poll_wait_seconds=1", "--rest_api_read_timeout_in_ms=1500",
        "--max_request_bytes=2000000", "--plsc_model_name=face")
    channel = grpc.insecure_channel(target)
    yield {"url": url, "proc": proc, "channel": channel, "root": root, "toy": toy, "face": face,
           "log": log_path}
    channel.close()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


def post(server, path, body):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(server["url"] + path, content=data, timeout=60)


# -- TF Serving's REST document (g3doc/api_rest.md) ---------------------------------------------

def test_rest_document_examples(server):
    status = httpx.get(server["url"] + "/v1/models/" + THREE).json()
    assert status == {"model_version_status": [{"version": "123", "state": "AVAILABLE", "status":
                                                {"error_code": "OK", "error_message": ""}}]}
    reply = post(server, "/v1/models/%s:predict" % THREE, {"instances": [1.0, 2.0, 5.0]})
    assert reply.json() == {"predictions": [3.5, 4.0, 5.5]}
    reply = post(server, "/v1/models/%s:regress" % THREE,
                 {"signature_name": "tensorflow/serving/regress",
                  "examples": [{"x": 1.0}, {"x": 2.0}]})
    assert reply.json() == {"results": [3.5, 4.0]}
    reply = post(server, "/v1/models/half:predict", {"instances": [1.0, 5.0]})
    assert reply.status_code == 404 and reply.headers["content-type"] == "application/json"
    assert reply.json() == {"error": "Servable not found for request: Latest(half)"}
    # A shape-less input takes a scalar too; unknown top-level keys are ignored.
    assert post(server, "/v1/models/%s:predict" % THREE, {"inputs": 1.0, "x": 1}).json() == {
        "outputs": 3.5}


# -- TF Serving's HTTP handler tests (http_rest_api_handler_test.cc) ----------------------------

@pytest.mark.parametrize("method, path, message", [
    ("GET", "/v1/foo", "Malformed request"), ("POST", "/v1/foo", "Malformed request"),
    ("GET", "/v1/models", "Missing model name"),
    ("GET", "/v1/models/debug/model_name", "Malformed request"),
    ("POST", "/v1/models", "Malformed request"),
    ("GET", "/v1/models/foo:predict", "Malformed request"),
    ("GET", "/v1/models/foo/version/50:predict", "Malformed request"),
    ("POST", "/v1/models/foo/version/50:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/HELLO:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/18446744073709551615:regress",
     "Failed to convert version"),
    ("POST", "/v1/models/foo/metadata", "Malformed request"),
    ("POST", "/v1/models/foo/label/some_label:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/50/labels/some_label:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/some_label:regress", "Malformed request"),
    ("PUT", "/v1/models/%s" % TWO, "Malformed request"),
    ("DELETE", "/v1/models/%s:predict" % TWO, "Malformed request"),
    ("GET", "/v1/models/%s/versions/%%C2%%B2" % TWO, "Malformed request"),
])
def test_unsupported_api_calls_are_400(server, method, path, message):
    reply = httpx.request(method, server["url"] + path, timeout=30)
    assert reply.status_code == 400 and message in reply.json()["error"]


def test_handler_test_predict_regress_classify_status(server):
    url = "/v1/models/" + TWO
    for path, status in [("/v1/models/foo:predict", 404), ("/v1/models/foo/versions/50:predict",
                                                           404),
                         (url + "/versions/99:predict", 404)]:
        assert post(server, path, {"instances": [1]}).status_code == status
    assert "JSON Parse error: The document is empty" in post(server, url + ":predict",
                                                             b"").json()["error"]
    assert "not of expected type: float" in post(server, url + ":predict", {
        "instances": ["x", "y"]}).json()["error"]
    reply = post(server, url + "/labels/Version_Nonexistent:predict", {"instances": ["x"]})
    assert reply.status_code == 400 and "Unrecognized servable version label" in reply.text
    assert "'signature_name' key must be a string value." in post(
        server, url + ":predict", {"signature_name": 100}).json()["error"]
    # Shapes are not checked against the signature's ([-1, 1]), as in TF Serving.
    assert post(server, url + ":predict", {"instances": [[1.0, 2.0], [3.0, 4.0]]}).json() == {
        "predictions": [[2.5, 3.0], [3.5, 4.0]]}
    for prefix in (url + "/versions/123", url + "/labels/Version_Label"):
        assert post(server, prefix + ":predict", {"instances": [1.0, 2.0]}).json() == {
            "predictions": [2.5, 3.0]}
        assert post(server, prefix + ":regress", {"signature_name": "regress_x_to_y", "examples": [
            {"x": 80.0}]}).json() == {"results": [42.0]}
    assert post(server, url + ":predict", {"signature_name": "serving_default",
                                           "inputs": [3.0, 4.0]}).json() == {"outputs": [3.5, 4.0]}
    assert post(server, url + ":classify", {"signature_name": "classify_x_to_y", "examples": [
        {"x": 20.0}]}).json() == {"results": [[["", 12.0]]]}
    want = {"model_version_status": [{"version": "123", "state": "AVAILABLE", "status": {
        "error_code": "OK", "error_message": ""}}]}
    for path in ("", "/versions/123", "/labels/Version_Label"):
        assert httpx.get(server["url"] + url + path).json() == want
    assert httpx.get(server["url"] + url + "/versions/124").status_code == 404


def test_metadata_has_every_field_as_tf_serving_writes_it(server):
    meta = httpx.get(server["url"] + "/v1/models/%s/metadata" % TWO).json()
    assert meta["model_spec"] == {"name": TWO, "signature_name": "", "version": "123"}
    sigs = meta["metadata"]["signature_def"]["signature_def"]
    assert set(sigs) == {"regress_x_to_y", "regress_x_to_y2", "regress_x2_to_y3",
                         "classify_x_to_y", "serving_default"}
    assert sigs["serving_default"] == {
        "inputs": {"x": {"dtype": "DT_FLOAT", "name": "x:0", "tensor_shape": {
            "dim": [{"size": "-1", "name": ""}, {"size": "1", "name": ""}],
            "unknown_rank": False}}},
        "outputs": {"y": {"dtype": "DT_FLOAT", "name": "y:0", "tensor_shape": {
            "dim": [{"size": "-1", "name": ""}, {"size": "1", "name": ""}],
            "unknown_rank": False}}},
        "method_name": "tensorflow/serving/predict", "defaults": {}}
    assert sigs["classify_x_to_y"]["inputs"]["inputs"]["tensor_shape"] == {
        "dim": [], "unknown_rank": True}


# -- gRPC: the tensorflow-serving-api client on every RPC --------------------------------------

def test_grpc_prediction_service(server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server["channel"])
    request = predict_pb2.PredictRequest()
    request.model_spec.name = TWO
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0], [2.0]], dtype=tf.float32))
    reply = stub.Predict(request, timeout=30)
    assert list(reply.outputs["y"].float_val) == [2.5, 3.0]
    assert reply.model_spec.version.value == 123
    assert reply.model_spec.signature_name == "serving_default"
    request.model_spec.version_label = "Version_Label"
    assert tf.make_ndarray(stub.Predict(request, timeout=30).outputs["y"]).tolist() == [[2.5],
                                                                                        [3.0]]
    request.output_filter.append("nope")
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "output tensor alias not found" in err.value.details()

    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = TWO
    classify.model_spec.signature_name = "classify_x_to_y"
    classify.input.example_list.examples.add().features.feature["x"].float_list.value.append(10)
    result = stub.Classify(classify, timeout=30).result
    assert [(c.label, c.score) for c in result.classifications[0].classes] == [("", 7.0)]

    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = TWO
    regress.model_spec.signature_name = "regress_x_to_y2"
    context = regress.input.example_list_with_context
    context.context.features.feature["x"].float_list.value.append(4.0)
    context.examples.add()
    assert [r.value for r in stub.Regress(regress, timeout=30).result.regressions] == [5.0]

    multi = inference_pb2.MultiInferenceRequest()
    for method, signature in (("tensorflow/serving/classify", "classify_x_to_y"),
                              ("tensorflow/serving/regress", "regress_x_to_y2")):
        task = multi.tasks.add()
        task.model_spec.name = TWO
        task.model_spec.signature_name = signature
        task.method_name = method
    multi.input.example_list.examples.add().features.feature["x"].float_list.value.append(2.0)
    results = stub.MultiInference(multi, timeout=30).results
    assert results[0].classification_result.classifications[0].classes[0].score == 3.0
    assert results[1].regression_result.regressions[0].value == 4.0

    meta = get_model_metadata_pb2.GetModelMetadataRequest()
    meta.model_spec.name = THREE
    meta.metadata_field.append("signature_def")
    reply = stub.GetModelMetadata(meta, timeout=30)
    defs = get_model_metadata_pb2.SignatureDefMap()
    reply.metadata["signature_def"].Unpack(defs)
    assert set(defs.signature_def) == {"serving_default", "tensorflow/serving/regress"}
    request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpc_model_service_status_and_reload(server):
    stub = model_service_pb2_grpc.ModelServiceStub(server["channel"])
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = TWO
    reply = stub.GetModelStatus(status, timeout=30)
    assert [(s.version, s.state) for s in reply.model_version_status] == [
        (123, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    # Reload: serve version 124 of half_plus_two as well, drop the toy and face models.
    from google.protobuf import text_format
    reload = model_management_pb2.ReloadConfigRequest()
    text_format.Parse("""model_config_list {
      config { name: "%s" base_path: "%s" model_platform: "tensorflow"
               model_version_policy { all {} } }
      config { name: "%s" base_path: "%s" model_platform: "tensorflow" } }"""
                      % (TWO, server["root"] / TWO, THREE,
                         server["root"] / THREE), reload.config)
    toy = reload.config.model_config_list.config  # ... and the toy models, dropped
    assert len(toy) == 2
    assert stub.HandleReloadConfigRequest(reload, timeout=120).status.error_code == 0
    reply = stub.GetModelStatus(status, timeout=30)
    assert [s.version for s in reply.model_version_status] == [124, 123]
    assert httpx.get(server["url"] + "/v1/models/toy").status_code == 404
    gone = post(server, "/FaceClassifyService/inference",
                {"base64_string": [b64(image_bytes(3))["b64"]]})
    assert gone.status_code == 404 and "Latest(face)" in gone.json()["error"]
    for name in ("toy", "face"):
        keep = reload.config.model_config_list.config.add()
        keep.name, keep.base_path, keep.model_platform = name, os.path.dirname(server[name]), \
            "tensorflow"
    assert stub.HandleReloadConfigRequest(reload, timeout=120).status.error_code == 0
    assert httpx.get(server["url"] + "/v1/models/toy").status_code == 200
    assert httpx.get(server["url"] + "/v1/models/face").status_code == 200
    bad = model_management_pb2.ReloadConfigRequest()
    text_format.Parse('model_config_list { config { name: "x" base_path: "relative" '
                      'model_platform: "tensorflow" } }', bad.config)
    with pytest.raises(grpc.RpcError) as err:
        stub.HandleReloadConfigRequest(bad, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "absolute path" in err.value.details()


# -- the toy image classifier: batching, classify extension, image limits, metrics --------------

def test_concurrent_image_requests_merge_and_classify_ranks_classes(server):
    import concurrent.futures
    images = [image_bytes(i) for i in range(12)]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        replies = list(pool.map(lambda img: post(server, "/v1/models/toy:predict", {
            "instances": [b64(img)]}), images))
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies][:2]
    alone = [post(server, "/v1/models/toy:predict", {"instances": [b64(img)]}).json()
             for img in images[:3]]
    for got, want in zip(replies, alone):
        np.testing.assert_allclose(got.json()["predictions"][0]["probabilities"],
                                   want["predictions"][0]["probabilities"], rtol=1e-5)
    ranked = post(server, "/v1/models/toy:classify", {"examples": [
        {"image_bytes": b64(images[0])}]}).json()["results"][0]
    assert [int(label) for label, _ in ranked] == alone[0]["predictions"][0]["top_k_classes"]
    text = httpx.get(server["url"] + "/monitoring/prometheus/metrics").text
    assert ':tensorflow:serving:request_count{model_name="toy",status="OK"}' in text
    assert ':tensorflow:serving:request_latency_bucket{model_name="toy",API="predict",' \
           'entrypoint="REST",le="10"}' in text
    assert ":tensorflow:serving:batching_session:processed_batch_size_count" in text
    assert ':fastnn:serving:model_version_state{model_name="toy",version="1",' \
           'state="AVAILABLE"} 1' in text


def huge_png():
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", 12000, 12000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
            + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + b"\x00" * 64)


# -- no request gets a 5xx ---------------------------------------------------------------------

def malformed_corpus():
    """(method, path, body) triples written from TF Serving's REST spec: every one is wrong."""
    two, toy = "/v1/models/%s" % TWO, "/v1/models/toy"
    deep = b'{"instances": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    deep_ok_json = {"inputs": json.loads("[" * 40 + '"a"' + "]" * 40)}
    corpus = [
        ("POST", two + ":predict", deep), ("POST", two + ":predict", b"{" * 50000),
        ("POST", toy + ":predict", deep_ok_json),
        ("POST", toy + ":predict", {"instances": json.loads("[" * 34 + '"x"' + "]" * 34)}),
        ("POST", two + ":classify", {"signature_name": "classify_x_to_y",
                                     "examples": [{"x": 2 ** 63}]}),
        ("GET", two + "/versions/%C2%B2", b""), ("GET", two + "/versions/\u00b2", b""),
        ("POST", two + "/versions/%C2%B2:predict", {"instances": [1.0]}),
        ("POST", two + "/versions/99999999999999999999:predict", {"instances": [1.0]}),
        ("POST", two + ":predict", b"\xff\xfe\x00{"), ("POST", two + ":predict", b"\x00" * 100),
        ("POST", two + ":predict", '{"instances": ["\\ud800"]}'),
        ("POST", two + ":predict", {"instances": [None]}),
        ("POST", two + ":predict", {"instances": [{"b64": "aGk="}]}),
        ("POST", two + ":predict", {"instances": [[1.0], "a"]}),
        ("POST", two + ":predict", {"inputs": {"x": {"b64": 5}}}),
        ("POST", two + ":predict", {"signature_name": "nope", "instances": [1.0]}),
        ("POST", two + ":predict", {"signature_name": "__saved_model_init_op", "instances": [1]}),
        ("POST", two + ":predict", {"signature_name": "classify_x_to_y",
                                    "instances": [[1.0, 2.0]]}),
        ("POST", two + ":regress", {"signature_name": "regress_x2_to_y3",
                                    "examples": [{"x2": 1.0}]}),
        ("POST", two + ":regress", {"signature_name": "serving_default",
                                    "examples": [{"x": 1.0}]}),
        ("POST", two + ":classify", {"examples": [{"x": 1.0}]}),
        ("POST", two + ":classify", {"signature_name": "classify_x_to_y",
                                     "examples": [{"y": 1.0}]}),
        ("POST", two + ":classify", {"signature_name": "classify_x_to_y", "context": 5,
                                     "examples": [{}]}),
        ("POST", two + ":classify", {"examples": "x"}),
        ("POST", two + ":CLASSIFY", {"examples": [{}]}),
        ("POST", toy + ":predict", {"instances": [b64(b"not an image")]}),
        ("POST", toy + ":predict", {"instances": [{"b64": "!!!"}]}),
        ("POST", toy + ":predict", {"instances": [b64(huge_png())]}),
        ("POST", toy + ":classify", {"examples": [{"image_bytes": b64(huge_png())}]}),
        ("POST", toy + ":predict", {"signature_name": "predict_images",
                                    "instances": [[[[1.0, 2.0]]]]}),
        ("POST", toy + ":predict", {"signature_name": "predict_images",
                                    "inputs": [[[[1.0, 2.0, 3.0]]], [[[1.0]]]]}),
        ("POST", toy + ":predict", b'{"instances": [' + b"1.0," * 600000 + b"1.0]}"),
        ("POST", toy + ":predict", {"instances": [b64(image_bytes(1))] * 17}),
        ("PATCH", toy, b""), ("HEAD", toy, b""), ("OPTIONS", toy, b""),
        ("POST", "/v1/models/%2F:predict", {"instances": [1]}),
        ("GET", "/v1/models/a%00b", b""), ("GET", "/nowhere", b""),
        ("POST", "/monitoring/prometheus/metrics", b"x"),
    ]
    # PLSC's route (--plsc_model_name=face) on the same server.
    plsc, image = "/FaceClassifyService/inference", b64(image_bytes(2))["b64"]
    corpus += [("POST", plsc, body) for body in (
        deep, b"{" * 50000, b"", b"\xff\xfe\x00{", b"\x00" * 100, '{"base64_string": ["\\ud800"]}',
        [image], {"base64_string": image}, {"base64_string": None}, {"base64_string": []},
        {"base64_string": [None]}, {"base64_string": [[image]]},
        {"base64_string": [{"b64": image}]},
        {"base64_string": ["!!!"]}, {"base64_string": ["aGk"]}, {"base64_string": ["\u00e9"]},
        {"base64_string": [b64(b"not an image")["b64"]]},
        {"base64_string": [b64(huge_png())["b64"]]},
        {"base64_string": [image] * 17},  # more than --batching_parameters_file's 16
        b'{"base64_string": [' + b'"aGk=",' * 200000 + b'"aGk="]}')]
    corpus += [(method, plsc, b"") for method in ("GET", "PUT", "DELETE", "PATCH", "HEAD",
                                                  "OPTIONS")]
    corpus += [("POST", plsc + "/x", {"base64_string": [image]}),
               ("POST", plsc.lower(), {"base64_string": [image]})]
    return corpus


def test_malformed_requests_get_4xx_and_the_server_keeps_answering(server):
    failures = []
    with httpx.Client(timeout=60) as http:
        for method, path, body in malformed_corpus():
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            reply = http.request(method, server["url"] + path, content=data)
            ok = 400 <= reply.status_code < 500 or (method == "OPTIONS"
                                                     and reply.status_code == 400)
            if method != "HEAD":
                ok = ok and "error" in reply.json()
            if not ok:
                failures.append((method, path, str(body)[:60], reply.status_code, reply.text[:200]))
    assert not failures, failures
    assert post(server, "/v1/models/%s:predict" % THREE, {"instances": [1.0]}).json() == {
        "predictions": [3.5]}
    assert len(post(server, "/FaceClassifyService/inference", {"base64_string": [b64(
        image_bytes(4))["b64"]]}).json()["instance"]) == 1


def test_plsc_route_beside_tf_servings_routes(server):
    images = [image_bytes(10 + i) for i in range(3)]
    reply = post(server, "/FaceClassifyService/inference",
                 {"base64_string": [b64(img)["b64"] for img in images]})
    assert reply.status_code == 200, reply.text
    embeddings = [item["embedding"] for item in reply.json()["instance"]]
    want = post(server, "/v1/models/face:predict",
                {"instances": [b64(img) for img in images]}).json()["predictions"]
    np.testing.assert_allclose(embeddings, want, rtol=1e-5, atol=1e-6)
    assert np.asarray(embeddings).shape == (3, 8)


def test_stalled_clients_are_dropped(server):
    host, port = server["url"][len("http://"):].split(":")
    stalled = []
    for partial in (b"POST /v1/models/toy:pred", b"POST /v1/models/toy:predict HTTP/1.1\r\n"
                    b"Host: x\r\nContent-Length: 100\r\n\r\n{\"inst"):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(partial)
        stalled.append(sock)
    time.sleep(2.5)  # --rest_api_read_timeout_in_ms=1500
    for sock in stalled:
        sock.settimeout(5)
        data = sock.recv(4096)
        assert data == b"" or b"408" in data.split(b"\r\n")[0], data
        sock.close()


def test_sigterm_finishes_requests_in_flight_and_drops_a_stalled_client(tmp_path):
    toy = save_toy_model(str(tmp_path / "toy"), 1, kind="classifier", num_classes=5, seed=0)
    (tmp_path / "batching.config").write_text("max_batch_size { value: 64 }\n"
                                              "batch_timeout_micros { value: 2000000 }")
    (tmp_path / "monitoring.config").write_text("prometheus_config { enable: true }")
    proc, url, _ = start_server(str(tmp_path / "log"), "--model_name=toy",
                                "--model_base_path=%s" % os.path.dirname(toy),
                                "--enable_batching", "--file_system_poll_wait_seconds=0",
                                "--batching_parameters_file=%s" % (tmp_path / "batching.config"),
                                "--monitoring_config_file=%s" % (tmp_path / "monitoring.config"),
                                "--rest_api_read_timeout_in_ms=60000", wait_model="toy")
    import concurrent.futures
    try:
        host, port = url[len("http://"):].split(":")
        stalled = socket.create_connection((host, int(port)))
        stalled.sendall(b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: 100\r\n\r\n{")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(post, {"url": url}, "/v1/models/toy:predict",
                                    {"instances": [b64(image_bytes(600))]})
            count = ":tensorflow:serving:batching_session:input_batch_size_count"
            deadline = time.monotonic() + 30
            while not [line for line in httpx.get(url + "/monitoring/prometheus/metrics").text
                       .splitlines() if line.startswith(count) and line.endswith(" 1")]:
                assert time.monotonic() < deadline, "the request never reached the batch queue"
                time.sleep(0.05)
            assert not in_flight.done(), "the request was not held in the batch queue"
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            stalled.settimeout(10)
            data = stalled.recv(4096)
            assert b"500" not in data.split(b"\r\n")[0]
            reply = in_flight.result(30)
        assert reply.status_code == 200 and len(reply.json()["predictions"]) == 1
        # uvicorn re-raises the signal once it has shut down cleanly, as the convention is.
        assert proc.wait(20) in (0, -signal.SIGTERM)
        assert time.monotonic() - start < 10  # the batch timeout (2 s), not the grace period
        assert "Application shutdown complete" in open(str(tmp_path / "log")).read()
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/v1/models/toy", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_unknown_and_unsupported_flags_are_refused_by_name(tmp_path):
    toy = os.path.dirname(save_toy_model(str(tmp_path / "toy"), 1, kind="embedding"))
    for flags, message in [(["--model_base_path=/x", "--no_such_flag=1"], "no_such_flag"),
                           (["--model_base_path=/x", "--plsc_model_name=m",
                             "--rest_api_port=0"], "--rest_api_port=0 turns REST off"),
                           (["--model_base_path=%s" % toy, "--model_name=face",
                             "--plsc_model_name=fcae", "--rest_api_port=%d" % free_port(),
                             "--port=%d" % free_port()],
                            "--plsc_model_name=fcae names no served model (served: face)"),
                           (["--model_base_path=/x", "--ssl_config_file=/c"], "ssl_config_file"),
                           (["--model_base_path=/x", "--batching_parameters_file=/b"],
                            "without setting --enable_batching"),
                           ([], "Both --model_base_path and --model_config_file are empty")]:
        proc = subprocess.run([PYTHON, "-m", "images.serving"] + flags, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode != 0 and message in proc.stderr + proc.stdout, proc.stderr[-2000:]
