"""The model server end to end: real SavedModels, a real server on a loopback port, real clients.

One server runs as ``python -m images.serving`` in a subprocess (the command users type); the
others run uvicorn in a thread of this process, which is cheaper to start.  Expected outputs come
from the SavedModel called directly through ``tf.saved_model.load``.
"""
import base64
import concurrent.futures
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import httpx
import numpy as np
import pytest
import tensorflow as tf
import uvicorn
from PIL import Image

from conftest import PYTHON, ROOT, run_script
from images.serving.app import create_app
from images.serving.client import FaceService, ImageClassifier, ServingClient, ServingError
from images.serving.manager import BatchingOptions, ModelManager
from images.serving.servable import ModelLoadError
from images.serving.toy_model import save_toy_model

MAX_REQUEST_BYTES = 100_000


# -- helpers -------------------------------------------------------------------------------------

def make_image(seed, size=(20, 24), fmt="JPEG"):
    rng = np.random.RandomState(seed)
    pixels = rng.randint(0, 256, size=(size[0], size[1], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def b64(data):
    return {"b64": base64.b64encode(data).decode("ascii")}


_LOADED = {}


def direct(version_dir, signature="serving_default", **inputs):
    """The SavedModel's own outputs, called without the server."""
    if version_dir not in _LOADED:
        _LOADED[version_dir] = tf.saved_model.load(version_dir)
    fn = _LOADED[version_dir].signatures[signature]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def direct_images(version_dir, images):
    return direct(version_dir, image_bytes=np.array(images, dtype=object))


def assert_close(got, want):
    np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=1e-5, atol=1e-6)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url, model, proc=None, log_path=None, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            if httpx.get("%s/v1/models/%s" % (url, model), timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    log = open(log_path).read()[-4000:] if log_path else ""
    raise AssertionError("server at %s did not come up\n%s" % (url, log))


class ThreadServer:
    """uvicorn serving a ModelManager from a thread of the test process."""

    def __init__(self, manager, **app_kwargs):
        self.manager = manager
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.url = "http://" + self.address
        config = uvicorn.Config(create_app(manager, **app_kwargs), log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_ready(self.url, self.manager.model_name)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def metric(url, name):
    text = httpx.get(url + "/monitoring/prometheus/metrics").text
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no %s in\n%s" % (name, text))


def start_subprocess_server(base, log_path, *flags, model="toy"):
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [PYTHON, "-m", "images.serving", "--model_base_path=%s" % base, "--model_name=%s" % model,
         "--host=127.0.0.1", "--port=%d" % port] + list(flags),
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdout=log, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % port
    try:
        wait_ready(url, model, proc, log_path)
    except AssertionError:
        proc.kill()
        raise
    return proc, url


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving_models")
    paths = {
        "toy": save_toy_model(str(root / "toy"), 1, kind="classifier", num_classes=5, seed=0),
        "face_a": save_toy_model(str(root / "face_a"), 1, kind="embedding", seed=1),
        "face_b": save_toy_model(str(root / "face_b"), 1, kind="embedding", seed=2),
    }
    return paths


@pytest.fixture(scope="module")
def classifier(models, tmp_path_factory):
    """``python -m images.serving`` on the toy classifier; merges requests arriving within 30 ms."""
    log_path = str(tmp_path_factory.mktemp("serving_logs") / "classifier.log")
    proc, url = start_subprocess_server(
        os.path.dirname(models["toy"]), log_path, "--enable_batching",
        "--batch_timeout_micros=30000", "--max_batch_size=16",
        "--max_request_bytes=%d" % MAX_REQUEST_BYTES, "--file_system_poll_wait_seconds=0")
    yield url
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="module")
def face_servers(models):
    """Two embedding servers with different weights: the round-robin shows in the outputs."""
    servers = [ThreadServer(ModelManager("face", os.path.dirname(models[k]), poll_seconds=0))
               for k in ("face_a", "face_b")]
    for server in servers:
        server.__enter__()
    yield servers
    for server in servers:
        server.__exit__(None, None, None)


def predict(url, body, model="toy", path=None, **kwargs):
    target = "%s/v1/models/%s%s" % (url, model, path or ":predict")
    if isinstance(body, (bytes, str)) or hasattr(body, "__next__"):  # raw or chunked body
        return httpx.post(target, content=body, timeout=60, **kwargs)
    return httpx.post(target, json=body, timeout=60, **kwargs)


# -- status, metadata, predict, classify ---------------------------------------------------------

def test_status_metadata_and_openapi(classifier):
    status = httpx.get(classifier + "/v1/models/toy").json()
    assert status == {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {
        "error_code": "OK", "error_message": ""}}]}
    assert httpx.get(classifier + "/v1/models/toy/versions/1").json() == status
    meta = httpx.get(classifier + "/v1/models/toy/metadata").json()
    assert meta["model_spec"] == {"name": "toy", "signature_name": "", "version": "1"}
    sigs = meta["metadata"]["signature_def"]["signature_def"]
    assert sorted(sigs) == ["predict_images", "serving_default"]
    image_bytes = sigs["serving_default"]["inputs"]["image_bytes"]
    assert image_bytes["dtype"] == "DT_STRING"
    assert image_bytes["tensor_shape"]["dim"] == [{"size": "-1"}]
    assert sorted(sigs["serving_default"]["outputs"]) == [
        "classes", "probabilities", "top_k_classes"]
    assert sigs["serving_default"]["outputs"]["classes"]["dtype"] == "DT_INT64"
    assert sigs["predict_images"]["inputs"]["images"]["dtype"] == "DT_FLOAT"
    assert httpx.get(classifier + "/v1/models/toy/versions/1/metadata").json() == meta
    paths = httpx.get(classifier + "/openapi.json").json()["paths"]
    assert "/v1/models/{model_name}:predict" in paths
    assert "/v1/models/{model_name}/versions/{version}:classify" in paths


def test_predict_row_and_columnar_formats_equal_the_saved_model(classifier, models):
    images = [make_image(i) for i in range(3)] + [make_image(9, fmt="PNG")]
    want = direct_images(models["toy"], images)
    bare = predict(classifier, {"instances": [b64(x) for x in images]})
    named = predict(classifier, {"instances": [{"image_bytes": b64(x)} for x in images],
                                 "signature_name": "serving_default"})
    for reply in (bare, named):
        assert reply.status_code == 200, reply.text
        rows = reply.json()["predictions"]
        assert [r["classes"] for r in rows] == want["classes"].tolist()
        assert [r["top_k_classes"] for r in rows] == want["top_k_classes"].tolist()
        assert_close([r["probabilities"] for r in rows], want["probabilities"])
    columnar = predict(classifier, {"inputs": {"image_bytes": [b64(x) for x in images]}})
    outputs = columnar.json()["outputs"]
    assert outputs["classes"] == want["classes"].tolist()
    assert_close(outputs["probabilities"], want["probabilities"])
    versioned = predict(classifier, {"inputs": [b64(x) for x in images]},
                        path="/versions/1:predict")
    assert versioned.json()["outputs"]["classes"] == want["classes"].tolist()


def test_float_image_signature(classifier, models):
    rng = np.random.RandomState(3)
    batch = rng.uniform(0, 255, size=(2, 12, 10, 3)).astype(np.float32)
    want = direct(models["toy"], "predict_images", images=batch)
    reply = predict(classifier, {"signature_name": "predict_images",
                                 "instances": batch.tolist()})
    assert reply.status_code == 200, reply.text
    rows = reply.json()["predictions"]
    assert [r["classes"] for r in rows] == want["classes"].tolist()
    assert_close([r["probabilities"] for r in rows], want["probabilities"])


def test_classify_ranks_the_top_k_classes(classifier, models):
    images = [make_image(i) for i in range(10, 13)]
    want = direct_images(models["toy"], images)
    reply = predict(classifier, {"examples": [{"image_bytes": b64(x)} for x in images]},
                    path=":classify")
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    for ranked, top, probs in zip(results, want["top_k_classes"], want["probabilities"]):
        assert [int(label) for label, _ in ranked] == top.tolist()
        assert_close([score for _, score in ranked], probs)
    classifier_client = ImageClassifier("toy", labels={int(c): "class-%d" % c for c in range(5)})
    classifier_client.connect(classifier.split("://")[1])
    ranked = classifier_client.classify(images, top_k=2)
    classifier_client.close()
    assert [[p.class_id for p in r] for r in ranked] == want["top_k_classes"][:, :2].tolist()
    assert ranked[0][0].label == "class-%d" % want["top_k_classes"][0, 0]
    assert ranked[0][0].score == pytest.approx(float(want["probabilities"][0].max()), rel=1e-5)


def test_concurrent_clients_get_their_own_results_from_merged_batches(classifier, models):
    images = [make_image(100 + i, size=(16 + i % 5, 20)) for i in range(24)]
    want = direct_images(models["toy"], images)
    batches0 = metric(classifier, "fastnn_serving_model_batches_total")
    requests0 = metric(classifier, "fastnn_serving_model_requests_total")
    barrier = threading.Barrier(len(images))
    http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=32))

    def one(i):
        barrier.wait()
        return http.post(classifier + "/v1/models/toy:predict",
                         json={"instances": [{"image_bytes": b64(images[i])}]})

    with concurrent.futures.ThreadPoolExecutor(len(images)) as pool:
        replies = list(pool.map(one, range(len(images))))
    for i, reply in enumerate(replies):
        assert reply.status_code == 200, reply.text
        row = reply.json()["predictions"][0]
        assert row["classes"] == want["classes"][i]
        assert_close(row["probabilities"], want["probabilities"][i])
    batches = metric(classifier, "fastnn_serving_model_batches_total") - batches0
    answered = metric(classifier, "fastnn_serving_model_requests_total") - requests0
    assert answered == len(images)
    assert batches < answered, "no request was merged into another's batch"

    # A bad image in the same wave fails alone; its batch mates still get their answers.
    barrier = threading.Barrier(8)
    wave = [b64(images[i]) for i in range(7)] + [b64(b"this is not an image")]

    def mixed(i):
        barrier.wait()
        return http.post(classifier + "/v1/models/toy:predict", json={"instances": [wave[i]]})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(mixed, range(8)))
    http.close()
    assert replies[-1].status_code == 400
    assert "Unknown image file format" in replies[-1].json()["error"]
    for i, reply in enumerate(replies[:-1]):
        assert reply.status_code == 200, reply.text
        assert_close(reply.json()["predictions"][0]["probabilities"], want["probabilities"][i])


# -- bad input -----------------------------------------------------------------------------------

def _oversized():
    return json.dumps({"instances": [b64(os.urandom(MAX_REQUEST_BYTES))]})


def _chunked_oversized():
    body = _oversized().encode()
    for start in range(0, len(body), 8192):  # a generator: sent chunked, without Content-Length
        yield body[start:start + 8192]


BAD_REQUESTS = [
    ("not an image", {"instances": [b64(b"definitely not an image")]}, ":predict", 400,
     "Unknown image file format"),
    ("bad base64", {"instances": [{"b64": "@@not base64@@"}]}, ":predict", 400, "invalid base64"),
    ("wrong shape", {"signature_name": "predict_images", "instances": [[[1.0, 2.0, 3.0]]]},
     ":predict", 400, "has shape [1, 1, 3] but the signature expects DT_FLOAT [-1, -1, -1, 3]"),
    ("wrong dtype", {"signature_name": "predict_images", "instances": [[[["a", "b", "c"]]]]},
     ":predict", 400, "takes DT_FLOAT numbers; got strings"),
    ("number for bytes", {"instances": [42]}, ":predict", 400, "takes strings"),
    ("malformed json", b'{"instances": [', ":predict", 400, "not valid JSON"),
    ("not an object", b"[1, 2]", ":predict", 400, "must be a JSON object"),
    ("empty body", b"", ":predict", 400, "body is empty"),
    ("both formats", {"instances": [], "inputs": []}, ":predict", 400, "exactly one"),
    ("unknown input", {"instances": [{"img": b64(b"x")}]}, ":predict", 400, "unknown input(s)"),
    ("unknown signature", {"signature_name": "nope", "instances": [b64(b"x")]}, ":predict", 400,
     "has no signature 'nope'; it has: predict_images, serving_default"),
    ("empty instances", {"instances": []}, ":predict", 400, "\"instances\" is empty"),
    ("oversized", _oversized, ":predict", 413, "larger than the server's limit of 100000 bytes"),
    ("oversized chunked", _chunked_oversized, ":predict", 413, "larger than the server's limit"),
    ("unknown version", {"instances": [b64(b"x")]}, "/versions/7:predict", 404,
     "not being served (no such version)"),
    ("bad version", {"instances": [b64(b"x")]}, "/versions/x1:predict", 400,
     "version must be a number"),
    ("unsupported method", {"examples": []}, ":regress", 400, "answers :predict and :classify"),
    ("classify without examples", {"instances": []}, ":classify", 400, "unknown field"),
]


@pytest.mark.parametrize("body, path, status, message",
                         [case[1:] for case in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_is_refused_and_the_server_keeps_serving(classifier, models, body, path,
                                                             status, message):
    reply = predict(classifier, body() if callable(body) else body, path=path)
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"]
    good = make_image(7)
    after = predict(classifier, {"instances": [b64(good)]})
    assert after.status_code == 200
    assert after.json()["predictions"][0]["classes"] == \
        direct_images(models["toy"], [good])["classes"][0]


def test_unknown_model_and_route_are_404(classifier):
    reply = predict(classifier, {"instances": []}, model="other")
    assert reply.status_code == 404
    assert reply.json()["error"] == "model 'other' is not served here; this server serves 'toy'"
    assert httpx.get(classifier + "/v1/models/other").status_code == 404
    assert httpx.get(classifier + "/v1/models/toy/versions/3").json()["error"] == \
        "model 'toy' has no version 3; known versions: 1"
    assert "no route" in httpx.get(classifier + "/v2/nothing").json()["error"]


# -- clients -------------------------------------------------------------------------------------

def test_face_service_round_robin_over_servers(face_servers, models):
    images = [make_image(200 + i) for i in range(3)]
    want_a = direct_images(models["face_a"], images)["embeddings"]
    want_b = direct_images(models["face_b"], images)["embeddings"]
    assert not np.allclose(want_a, want_b)
    fc = FaceService()
    fc.connect(face_servers[0].address)
    fc.connect(face_servers[1].address)
    for want in (want_a, want_b, want_a):
        embeddings = fc.encode(images)
        assert len(embeddings) == 3 and embeddings[0].dtype == np.float32
        assert_close(np.stack(embeddings), want)
    fc.close()

    # Longer lists are split into requests of batch_size, each to the next server.
    fc = FaceService(batch_size=2)
    fc.connect(face_servers[0].address)
    fc.connect(face_servers[1].address)
    embeddings = np.stack(fc.encode(images))
    fc.close()
    assert_close(embeddings[:2], want_a[:2])
    assert_close(embeddings[2:], want_b[2:])


def test_face_service_skips_a_dead_server_and_reports_when_none_answers(face_servers, models):
    image = make_image(300)
    fc = FaceService(timeout=5)
    fc.connect("127.0.0.1:%d" % free_port())
    fc.connect(face_servers[0].address)
    for _ in range(2):
        assert_close(fc.encode([image])[0],
                     direct_images(models["face_a"], [image])["embeddings"][0])
    fc.close()
    dead = FaceService(timeout=5)
    dead.connect("127.0.0.1:%d" % free_port())
    with pytest.raises(ServingError, match="no server could answer"):
        dead.encode([image])
    with pytest.raises(ServingError, match="not connected"):
        FaceService().encode([image])
    with pytest.raises(TypeError, match="image 0 is str"):
        FaceService().encode(["a.jpg"])


def test_embedding_models_return_embeddings_not_classes(face_servers, classifier):
    reply = predict(face_servers[0].url, {"examples": [{"image_bytes": b64(make_image(1))}]},
                    model="face", path=":classify")
    assert reply.status_code == 400
    assert "it returns embeddings, not classes" in reply.json()["error"]
    fc = FaceService(model_name="toy")
    fc.connect(classifier.split("://")[1])
    with pytest.raises(ServingError, match="no 'embeddings' output .*use ImageClassifier"):
        fc.encode([make_image(1)])
    fc.close()
    with ServingClient(face_servers[0].address, "face") as client:
        assert client.status()[0]["state"] == "AVAILABLE"
        assert list(client.metadata()["serving_default"]["outputs"]) == ["embeddings"]
        with pytest.raises(ServingError) as err:
            client.predict(instances=[b64(b"junk")])
        assert err.value.status_code == 400 and "Unknown image file format" in str(err.value)


def test_command_line_client(face_servers, classifier, models, tmp_path, capsys):
    from images.serving.client.__main__ import main as client_main
    files = []
    for i in range(3):
        path = tmp_path / ("img%d.jpg" % i)
        path.write_bytes(make_image(400 + i))
        files.append(str(path))
    images = [open(f, "rb").read() for f in files]
    labels = tmp_path / "labels.txt"
    labels.write_text("".join("%d:name%d\n" % (i, i) for i in range(5)))

    # Once as users type it; the other cases call the same main() in this process.
    proc = run_script(["-m", "images.serving.client", "classify", "--server",
                       classifier.split("://")[1], "--model_name", "toy", "--labels",
                       str(labels), "--top_k", "2"] + files)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    want = direct_images(models["toy"], images)
    assert [r["file"] for r in rows] == files
    for row, top in zip(rows, want["top_k_classes"]):
        assert [c["class_id"] for c in row["classes"]] == top[:2].tolist()
        assert [c["label"] for c in row["classes"]] == ["name%d" % c for c in top[:2]]

    client_main(["embed", "--server", face_servers[0].address, "--server",
                 face_servers[1].address, "--model_name", "face", "--batch_size", "2"] + files)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in rows] == files
    assert_close([r["embedding"] for r in rows[:2]],
                 direct_images(models["face_a"], images[:2])["embeddings"])
    assert_close([r["embedding"] for r in rows[2:]],
                 direct_images(models["face_b"], images[2:])["embeddings"])

    with pytest.raises(SystemExit, match="model 'nope' is not served here"):
        client_main(["embed", "--server", face_servers[0].address, "--model_name", "nope",
                     files[0]])
    with pytest.raises(SystemExit, match="cannot read .*absent.jpg"):
        client_main(["embed", "--server", face_servers[0].address, "--model_name", "face",
                     str(tmp_path / "absent.jpg")])


# -- operations: reload, queue bound, shutdown, start-up errors ----------------------------------

def test_new_version_is_loaded_while_the_old_keeps_serving(tmp_path):
    base, staging = str(tmp_path / "model"), str(tmp_path / "staging")
    v1 = save_toy_model(base, 1, seed=11)
    v2_staged = save_toy_model(staging, 2, seed=12)
    images = [make_image(500 + i) for i in range(2)]
    want1 = direct_images(v1, images)["probabilities"]
    want2 = direct_images(v2_staged, images)["probabilities"]
    assert not np.allclose(want1, want2)
    manager = ModelManager("toy", base, batching=BatchingOptions(True, batch_timeout_s=0.002),
                           poll_seconds=0.1)
    with ThreadServer(manager) as server:
        replies, stop = [], threading.Event()

        def hammer():
            with httpx.Client(timeout=60) as http:
                while not stop.is_set():
                    replies.append(http.post(server.url + "/v1/models/toy:predict",
                                             json={"instances": [b64(x) for x in images]}))

        thread = threading.Thread(target=hammer)
        thread.start()
        time.sleep(0.3)
        shutil.copytree(v2_staged, os.path.join(base, "2"))  # not atomic: files land one by one
        deadline = time.monotonic() + 60
        states = {}
        while time.monotonic() < deadline:
            states = {s["version"]: s["state"] for s in
                      httpx.get(server.url + "/v1/models/toy").json()["model_version_status"]}
            if states == {"2": "AVAILABLE", "1": "END"}:
                break
            time.sleep(0.1)
        time.sleep(0.3)
        stop.set()
        thread.join()
        assert states == {"2": "AVAILABLE", "1": "END"}
        assert replies and all(r.status_code == 200 for r in replies), \
            [r.text for r in replies if r.status_code != 200][:3]
        seen = []
        for reply in replies:
            probs = np.array([p["probabilities"] for p in reply.json()["predictions"]])
            matches = [v for v, want in ((1, want1), (2, want2))
                       if np.allclose(probs, want, rtol=1e-5, atol=1e-6)]
            assert len(matches) == 1
            seen.append(matches[0])
        assert seen[0] == 1 and seen[-1] == 2 and seen == sorted(seen)

        # A broken version is reported and the good one keeps serving.
        os.makedirs(os.path.join(base, "3"))
        with open(os.path.join(base, "3", "saved_model.pb"), "wb") as f:
            f.write(b"not a protobuf")
        deadline = time.monotonic() + 30
        status3 = None
        while time.monotonic() < deadline:
            replies3 = httpx.get(server.url + "/v1/models/toy/versions/3")
            if replies3.status_code == 200:
                status3 = replies3.json()["model_version_status"][0]
                if status3["state"] == "END":
                    break
            time.sleep(0.1)
        assert status3 is not None and status3["state"] == "END"
        assert status3["status"]["error_code"] != "OK" and "3" in status3["status"][
            "error_message"]
        reply = predict(server.url, {"instances": [b64(x) for x in images]})
        assert_close([p["probabilities"] for p in reply.json()["predictions"]], want2)
        old = predict(server.url, {"instances": [b64(images[0])]}, path="/versions/1:predict")
        assert old.status_code == 404 and "its state is END" in old.json()["error"]


def test_full_queue_answers_503(models):
    manager = ModelManager("toy", os.path.dirname(models["toy"]), poll_seconds=0,
                           batching=BatchingOptions(True, max_batch_size=64,
                                                    batch_timeout_s=4.0, max_enqueued=2,
                                                    num_threads=1))
    with ThreadServer(manager) as server:
        body = {"instances": [b64(make_image(1))]}
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            waiting = [pool.submit(predict, server.url, body) for _ in range(2)]
            deadline = time.monotonic() + 10
            while manager.counters()["waiting"] < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            refused = predict(server.url, body)
            assert refused.status_code == 503
            assert "retry later" in refused.json()["error"]
            assert [f.result().status_code for f in waiting] == [200, 200]
        assert predict(server.url, body).status_code == 200


def test_sigterm_finishes_requests_in_flight(models, tmp_path):
    proc, url = start_subprocess_server(
        os.path.dirname(models["toy"]), str(tmp_path / "server.log"),
        "--enable_batching", "--batch_timeout_micros=3000000", "--max_batch_size=64",
        "--file_system_poll_wait_seconds=0")
    try:
        image = make_image(600)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(predict, url, {"instances": [b64(image)]})
            deadline = time.monotonic() + 10
            while (metric(url, "fastnn_serving_queue_waiting") < 1
                   and time.monotonic() < deadline):
                time.sleep(0.02)
            assert not in_flight.done(), "the request was not held in the batch queue"
            proc.send_signal(signal.SIGTERM)
            reply = in_flight.result(30)
        assert reply.status_code == 200
        assert_close(reply.json()["predictions"][0]["probabilities"],
                     direct_images(models["toy"], [image])["probabilities"][0])
        # uvicorn re-raises the signal once it has shut down cleanly, as the convention is.
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in open(str(tmp_path / "server.log")).read()
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/v1/models/toy", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_start_up_errors_say_what_to_fix(models, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        ModelManager("m", str(tmp_path / "absent")).start()
    with pytest.raises(ModelLoadError, match="holds a SavedModel itself.*move it into"):
        ModelManager("m", models["toy"]).start()
    with pytest.raises(ModelLoadError, match="no MetaGraph tagged.*--saved_model_tags"):
        ModelManager("m", os.path.dirname(models["toy"]), tags=["train"]).start()
    empty = ModelManager("m", str(tmp_path), poll_seconds=0)
    empty.start()
    with ThreadServer(empty) as server:
        reply = predict(server.url, {"instances": []}, model="m")
        assert reply.status_code == 503 and "no version of model 'm' is loaded yet" in \
            reply.json()["error"]


# -- models written by the project's exporter (images/export.py) ---------------------------------

def _random_checkpoint(model_name, num_classes, path, channels):
    """A randomly initialised checkpoint of a registry network (the exporter's input)."""
    import tensorflow.compat.v1 as tf1
    from images.models import model_factory
    os.makedirs(os.path.dirname(path), exist_ok=True)
    graph = tf1.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)
        network_fn = model_factory.get_network_fn(model_name, num_classes)
        size = network_fn.default_image_size
        network_fn(tf1.placeholder(tf1.float32, [1, size, size, channels]))
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(sess, path)


def test_serves_models_written_by_the_exporter(tmp_path):
    from images import export
    lenet_ckpt = _random_checkpoint("lenet", 10, str(tmp_path / "lenet" / "model.ckpt"), 1)
    lenet = export.export("lenet", lenet_ckpt, str(tmp_path / "served_lenet"), num_classes=10,
                          channels=1, top_k=3)
    cifar_ckpt = _random_checkpoint("cifarnet", 10, str(tmp_path / "cifar" / "model.ckpt"), 3)
    cifar = export.export("cifarnet", cifar_ckpt, str(tmp_path / "served_cifar"), num_classes=0)
    digits = [make_image(700 + i, size=(28, 28), fmt="PNG") for i in range(3)]
    photos = [make_image(800 + i, size=(32, 32)) for i in range(3)]

    manager = ModelManager("lenet", str(tmp_path / "served_lenet"), poll_seconds=0)
    with ThreadServer(manager) as server:
        want = direct_images(lenet.path, digits)
        reply = predict(server.url, {"instances": [b64(x) for x in digits]}, model="lenet")
        assert reply.status_code == 200, reply.text
        rows = reply.json()["predictions"]
        assert [r["classes"] for r in rows] == want["classes"].tolist()
        assert_close([r["probabilities"] for r in rows], want["probabilities"])
        client = ImageClassifier("lenet")
        client.connect(server.address)
        ranked = client.classify(digits)
        client.close()
        assert [[p.class_id for p in r] for r in ranked] == want["top_k_classes"].tolist()
        assert_close([[p.score for p in r] for r in ranked], want["probabilities"])
        images = np.random.RandomState(0).uniform(-1, 1, (2, 28, 28, 1)).astype(np.float32)
        reply = predict(server.url, {"signature_name": "predict_images",
                                     "inputs": {"images": images.tolist()}}, model="lenet")
        assert_close(reply.json()["outputs"]["probabilities"],
                     direct(lenet.path, "predict_images", images=images)["probabilities"])
        wrong_size = predict(server.url, {"signature_name": "predict_images",
                                          "instances": np.zeros((1, 32, 32, 1)).tolist()},
                             model="lenet")
        assert wrong_size.status_code == 400
        assert "expects DT_FLOAT [-1, 28, 28, 1]" in wrong_size.json()["error"]

    manager = ModelManager("face", str(tmp_path / "served_cifar"), poll_seconds=0)
    with ThreadServer(manager) as server:
        fc = FaceService()
        fc.connect(server.address)
        embeddings = fc.encode(photos)
        fc.close()
        want = direct_images(cifar.path, photos)["embeddings"]
        assert want.shape == (3, 192)
        assert_close(np.stack(embeddings), want)


def test_face_service_on_an_embedding_model_from_the_largescale_export(tmp_path):
    """Entry.convert_for_prediction's SavedModel (images/largescale/export.py), served."""
    import tensorflow.compat.v1 as tf1
    from images.largescale import checkpoint as ckpt_lib
    from images.largescale import embedding
    from images.largescale import export as largescale_export
    folder = tmp_path / "ckpt"
    folder.mkdir()
    with tf1.Graph().as_default():
        tf1.set_random_seed(0)
        embedding.build_embedding(tf1.placeholder(tf1.float32, [None, 28, 28, 3]),
                                  backbone="lenet", emb_size=16, is_training=False)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(sess, str(folder / ckpt_lib.SHARED_PREFIX),
                                   write_meta_graph=False)
    (folder / ckpt_lib.META).write_text(json.dumps({"emb_size": 16, "step": 0}))
    path = largescale_export.export_saved_model(
        backbone="lenet", emb_size=16, image_shape=(3, 28, 28), checkpoint=str(folder),
        export_dir=str(tmp_path / "served"))
    faces = [make_image(900 + i, size=(28, 28)) for i in range(3)]
    want = direct_images(path, faces)
    with ThreadServer(ModelManager("face", str(tmp_path / "served"), poll_seconds=0)) as server:
        fc = FaceService()
        fc.connect(server.address)
        embeddings = np.stack(fc.encode(faces))
        fc.close()
        raw_client = FaceService(output_name="raw_embeddings").connect(server.address)
        raw = np.stack(raw_client.encode(faces))
        raw_client.close()
    assert embeddings.shape == (3, 16)
    assert_close(embeddings, want["embeddings"])
    assert_close(raw, want["raw_embeddings"])
    # The default output is the L2-normalised embedding used for cosine verification.
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    assert_close(embeddings, raw / np.linalg.norm(raw, axis=1, keepdims=True))
