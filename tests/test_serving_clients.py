"""The clients, the models this project exports, new versions and a full queue, end to end.

Servers run uvicorn on a loopback port in a thread of this process (cheaper to start than
``python -m images.serving``, which tests/test_serving.py runs); expected outputs come from the
SavedModel called directly through ``tf.saved_model.load``.
"""
import base64
import concurrent.futures
import io
import json
import os
import shutil
import socket
import threading
import time

import httpx
import numpy as np
import pytest
import tensorflow as tf
import uvicorn
from PIL import Image

from conftest import run_script
from images.serving import plsc_route
from images.serving.app import create_app
from images.serving.client import FaceService, ImageClassifier, ServingClient, ServingError
from images.serving.config import VersionPolicy
from images.serving.manager import BatchingOptions, ModelManager
from images.serving.servable import ModelLoadError
from images.serving.toy_model import save_toy_model


def make_image(seed, size=(20, 24), fmt="JPEG"):
    pixels = np.random.RandomState(seed).randint(0, 256, (size[0], size[1], 3), dtype=np.uint8)
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


class ThreadServer:
    """uvicorn serving a ModelManager (or a ServerCore) from a thread of the test process."""

    def __init__(self, manager, **app_kwargs):
        self.manager = manager
        self.ready_model = getattr(manager, "model_name", None) or sorted(manager.models)[0]
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
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/v1/models/%s" % self.ready_model, timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("server at %s did not come up" % self.url)

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def predict(url, body, model="toy", path=":predict"):
    return httpx.post("%s/v1/models/%s%s" % (url, model, path), json=body, timeout=60)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving_models")
    return {
        "toy": save_toy_model(str(root / "toy"), 1, kind="classifier", num_classes=5, seed=0),
        "face_a": save_toy_model(str(root / "face_a"), 1, kind="embedding", seed=1),
        "face_b": save_toy_model(str(root / "face_b"), 1, kind="embedding", seed=2),
    }


@pytest.fixture(scope="module")
def classifier(models):
    """The toy classifier, batching on (merged batches padded to 8)."""
    manager = ModelManager("toy", os.path.dirname(models["toy"]), poll_seconds=0,
                           batching=BatchingOptions(True, max_batch_size=8,
                                                    batch_timeout_s=0.02,
                                                    allowed_batch_sizes=(8,)))
    with ThreadServer(manager) as server:
        yield server


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


# -- FaceService (PLSC's client) -----------------------------------------------------------------

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
    with FaceService(batch_size=2) as fc:
        fc.connect(face_servers[0].address)
        fc.connect(face_servers[1].address)
        embeddings = np.stack(fc.encode(images))
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
    with FaceService(model_name="toy") as fc:
        fc.connect(classifier.address)
        with pytest.raises(ServingError, match="no 'embeddings' output .*use ImageClassifier"):
            fc.encode([make_image(1)])
    with ServingClient(face_servers[0].address, "face") as client:
        assert client.status()[0]["state"] == "AVAILABLE"
        assert list(client.metadata()["serving_default"]["outputs"]) == ["embeddings"]
        with pytest.raises(ServingError) as err:
            client.predict(instances=[b64(b"junk")])
        assert err.value.status_code == 400 and "Unknown image file format" in str(err.value)
    with ServingClient(face_servers[0].address, "nope") as client:
        with pytest.raises(ServingError) as err:
            client.status()
        assert err.value.status_code == 404


# -- ImageClassifier and merged batches ----------------------------------------------------------

def test_image_classifier_ranks_the_top_k_classes(classifier, models):
    images = [make_image(i) for i in range(10, 13)]
    want = direct_images(models["toy"], images)
    reply = predict(classifier.url, {"examples": [{"image_bytes": b64(x)} for x in images]},
                    path=":classify")
    assert reply.status_code == 200, reply.text
    for ranked, top, probs in zip(reply.json()["results"], want["top_k_classes"],
                                  want["probabilities"]):
        assert [int(label) for label, _ in ranked] == top.tolist()
        assert_close([score for _, score in ranked], probs)
    client = ImageClassifier("toy", labels={c: "class-%d" % c for c in range(5)})
    client.connect(classifier.address)
    ranked = client.classify(images, top_k=2)
    client.close()
    assert [[p.class_id for p in r] for r in ranked] == want["top_k_classes"][:, :2].tolist()
    assert ranked[0][0].label == "class-%d" % want["top_k_classes"][0, 0]
    assert ranked[0][0].score == pytest.approx(float(want["probabilities"][0].max()), rel=1e-5)


def test_concurrent_clients_get_their_own_results_from_merged_batches(classifier, models):
    images = [make_image(100 + i, size=(16 + i % 5, 20)) for i in range(16)]
    want = direct_images(models["toy"], images)
    before = classifier.manager.counters()
    barrier = threading.Barrier(len(images))
    http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=32))

    def one(i):
        barrier.wait()
        return http.post(classifier.url + "/v1/models/toy:predict",
                         json={"instances": [{"image_bytes": b64(images[i])}]})

    with concurrent.futures.ThreadPoolExecutor(len(images)) as pool:
        replies = list(pool.map(one, range(len(images))))
    for i, reply in enumerate(replies):
        assert reply.status_code == 200, reply.text
        row = reply.json()["predictions"][0]
        assert row["classes"] == want["classes"][i]
        assert_close(row["probabilities"], want["probabilities"][i])
    after = classifier.manager.counters()
    assert after["requests"] - before["requests"] == len(images)
    assert after["batches"] - before["batches"] < len(images), "no request was merged"

    # A bad image in the same wave fails alone; its batch mates still get their answers.
    barrier = threading.Barrier(8)
    wave = [b64(images[i]) for i in range(7)] + [b64(b"this is not an image")]

    def mixed(i):
        barrier.wait()
        return http.post(classifier.url + "/v1/models/toy:predict",
                         json={"instances": [wave[i]]})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(mixed, range(8)))
    http.close()
    assert replies[-1].status_code == 400
    assert "Unknown image file format" in replies[-1].json()["error"]
    for i, reply in enumerate(replies[:-1]):
        assert reply.status_code == 200, reply.text
        assert_close(reply.json()["predictions"][0]["probabilities"], want["probabilities"][i])


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
                       classifier.address, "--model_name", "toy", "--labels", str(labels),
                       "--top_k", "2"] + files)
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

    with pytest.raises(SystemExit, match="Servable not found for request: Latest\\(nope\\)"):
        client_main(["embed", "--server", face_servers[0].address, "--model_name", "nope",
                     files[0]])
    with pytest.raises(SystemExit, match="cannot read .*absent.jpg"):
        client_main(["embed", "--server", face_servers[0].address, "--model_name", "face",
                     str(tmp_path / "absent.jpg")])


# -- operations: new versions, version policy, a full queue, start-up errors ---------------------

def wait_for(fn, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    return fn()


def states(url, model="toy"):
    reply = httpx.get(url + "/v1/models/" + model)
    return {s["version"]: s["state"] for s in reply.json().get("model_version_status", [])}


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
        final = wait_for(lambda: states(server.url) == {"2": "AVAILABLE", "1": "END"})
        time.sleep(0.3)
        stop.set()
        thread.join()
        assert final, states(server.url)
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
        assert wait_for(lambda: states(server.url).get("3") == "END")
        status3 = httpx.get(server.url + "/v1/models/toy/versions/3").json()[
            "model_version_status"][0]
        assert status3["status"]["error_code"] != "OK" and "3" in status3["status"][
            "error_message"]
        reply = predict(server.url, {"instances": [b64(x) for x in images]})
        assert_close([p["probabilities"] for p in reply.json()["predictions"]], want2)
        old = predict(server.url, {"instances": [b64(images[0])]}, path="/versions/1:predict")
        assert old.status_code == 404
        assert old.json()["error"] == "Servable not found for request: Specific(toy, 1)"


def test_version_policies_choose_the_versions_served(tmp_path):
    base = str(tmp_path / "model")
    paths = {v: save_toy_model(base, v, seed=20 + v) for v in (1, 2, 3)}
    image = make_image(550)
    manager = ModelManager("toy", base, poll_seconds=0.1,
                           policy=VersionPolicy("latest", num_versions=2))
    with ThreadServer(manager) as server:
        assert states(server.url) == {"3": "AVAILABLE", "2": "AVAILABLE"}
        for version in (2, 3):
            reply = predict(server.url, {"instances": [b64(image)]},
                            path="/versions/%d:predict" % version)
            assert_close(reply.json()["predictions"][0]["probabilities"],
                         direct_images(paths[version], [image])["probabilities"][0])
        assert predict(server.url, {"instances": [b64(image)]},
                       path="/versions/1:predict").status_code == 404
        # A config reload pins version 1 alone: 1 is loaded, 2 and 3 unloaded.
        manager.update(VersionPolicy("specific", versions=(1,)), {"stable": 1})
        assert states(server.url) == {"3": "END", "2": "END", "1": "AVAILABLE"}
        reply = predict(server.url, {"instances": [b64(image)]}, path="/labels/stable:predict")
        assert_close(reply.json()["predictions"][0]["probabilities"],
                     direct_images(paths[1], [image])["probabilities"][0])
        # A newer version on disk is not served under a specific policy.
        save_toy_model(base, 4, seed=24)
        time.sleep(0.5)
        assert "4" not in states(server.url)


def test_full_queue_answers_503_as_tf_serving(models):
    manager = ModelManager("toy", os.path.dirname(models["toy"]), poll_seconds=0,
                           batching=BatchingOptions(True, max_batch_size=4, batch_timeout_s=2.0,
                                                    max_enqueued_batches=1, num_threads=1))
    with ThreadServer(manager) as server:
        body = {"instances": [b64(make_image(1))]}
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            waiting = [pool.submit(predict, server.url, body) for _ in range(3)]
            assert wait_for(lambda: manager.counters()["waiting"] == 3, 10)
            # 3 examples wait for a batch of 4; 2 more would pass the bound of 1 batch.
            refused = predict(server.url, {"instances": [b64(make_image(2))] * 2})
            assert refused.status_code == 503
            assert refused.json()["error"].startswith(
                "The batch scheduling queue to which this task was submitted is full")
            assert [f.result().status_code for f in waiting] == [200, 200, 200]
        assert predict(server.url, body).status_code == 200


def test_start_up_errors_say_what_to_fix(models, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        ModelManager("m", str(tmp_path / "absent")).start()
    with pytest.raises(ModelLoadError, match="holds a SavedModel itself.*move it into"):
        ModelManager("m", models["toy"]).start()
    with pytest.raises(ModelLoadError, match="no MetaGraph tagged.*--saved_model_tags"):
        ModelManager("m", os.path.dirname(models["toy"]), tags=["train"]).start()
    (tmp_path / "empty").mkdir()
    with ThreadServer(ModelManager("m", str(tmp_path / "empty"), poll_seconds=0)) as server:
        reply = predict(server.url, {"instances": [1]}, model="m")
        assert reply.status_code == 404
        assert "no version of it is loaded (yet)" in reply.json()["error"]


def test_a_grpc_port_already_served_is_refused():
    from images.serving.config import ConfigError
    from images.serving.core import ServerCore
    from images.serving.grpc_server import make_server
    core = ServerCore()
    first, port = make_server(core, "127.0.0.1:0", max_workers=1)
    try:
        # Not bound beside the first server (gRPC's SO_REUSEPORT would split clients between
        # two servers of different models).
        with pytest.raises(ConfigError, match="cannot listen for gRPC on 127.0.0.1:%d \\(is "
                                              "another server on that port" % port):
            make_server(core, "127.0.0.1:%d" % port, max_workers=1)
    finally:
        first.stop(0)


# -- models written by the project's exporters ---------------------------------------------------

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
        # The bytes signature through :classify, and the ImageClassifier client.
        ranked = predict(server.url, {"examples": [{"image_bytes": b64(x)} for x in digits]},
                         model="lenet", path=":classify").json()["results"]
        assert [[int(c) for c, _ in r] for r in ranked] == want["top_k_classes"].tolist()
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
        # The wrong image size reaches the network (TF Serving checks no shapes): a 400.
        wrong_size = predict(server.url, {"signature_name": "predict_images",
                                          "instances": np.zeros((1, 32, 32, 1)).tolist()},
                             model="lenet")
        assert wrong_size.status_code == 400 and wrong_size.json()["error"]

    with ThreadServer(ModelManager("face", str(tmp_path / "served_cifar"),
                                   poll_seconds=0)) as server:
        with FaceService() as fc:
            fc.connect(server.address)
            embeddings = fc.encode(photos)
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
        with FaceService() as fc:
            fc.connect(server.address)
            embeddings = np.stack(fc.encode(faces))
        with FaceService(output_name="raw_embeddings") as raw_client:
            raw_client.connect(server.address)
            raw = np.stack(raw_client.encode(faces))
    assert embeddings.shape == (3, 16)
    assert_close(embeddings, want["embeddings"])
    assert_close(raw, want["raw_embeddings"])
    # The default output is the L2-normalised embedding used for cosine verification.
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    assert_close(embeddings, raw / np.linalg.norm(raw, axis=1, keepdims=True))


# -- PLSC's route: POST /FaceClassifyService/inference beside TF Serving's ------------------------

def plsc_core(models, batching=BatchingOptions(), max_image_pixels=0):
    """A core serving the embedding model 'face' (face_a) and the classifier 'toy'."""
    from images.serving.core import CoreOptions, ServerCore
    from images.serving.metrics import server_metrics
    metrics = server_metrics()
    scheduler = batching.make_scheduler(metrics)
    managers = [ModelManager(name, os.path.dirname(models[key]), poll_seconds=0,
                             batching=batching, metrics=metrics, scheduler=scheduler)
                for name, key in (("face", "face_a"), ("toy", "toy"))]
    return ServerCore(CoreOptions(max_image_pixels=max_image_pixels), managers)


def plsc_post(url, body):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return httpx.post(url + plsc_route.ROUTE, content=data, timeout=60)


def test_plsc_route_serves_the_chosen_model_beside_tf_servings_routes(models):
    from face_service import FaceService as PLSCFaceService
    core = plsc_core(models, max_image_pixels=10_000)
    images = [make_image(700 + i) for i in range(3)]
    want = direct_images(models["face_a"], images)["embeddings"]
    with ThreadServer(core, max_request_bytes=200_000, metrics_path="/metrics",
                      extra_routers=[plsc_route.router(core, 200_000, "face")]) as server:
        with PLSCFaceService() as fc:
            fc.connect(server.address)
            got = fc.encode(images)
            assert isinstance(got, list) and all(isinstance(row, list) for row in got)
            assert_close(got, want)
            # URL-safe base64 is taken too; the reply is PLSC's.
            urlsafe = base64.urlsafe_b64encode(images[1]).decode()
            reply = fc.infer(json.dumps({"base64_string": [urlsafe]}))
            assert list(reply) == ["instance"] and list(reply["instance"][0]) == ["embedding"]
            assert_close(reply["instance"][0]["embedding"], want[1])
        assert_close(predict(server.url, {"instances": [b64(images[2])]}, model="face").json()[
            "predictions"][0], want[2])
        good = b64(images[0])["b64"]
        for body, status, message in [
                (b"{", 400, "JSON Parse error"),
                (b"[" * 100000, 400, "nested too deeply"),
                ({"base64_string": "x"}, 400, "\"base64_string\" of JSON type String"),
                ({"images": [good]}, 400, "no \"base64_string\" key"),
                ({"base64_string": [good, 5]}, 400, "base64_string[1] is of JSON type Number"),
                ({"base64_string": [good, "!!"]}, 400, "base64_string[1] is not valid base64"),
                ({"base64_string": []}, 400, "send at least one image"),
                ({"base64_string": [b64(b"junk")["b64"]]}, 400,
                 "could not process the images: Unknown image file format"),
                ({"base64_string": [good, b64(make_image(1, size=(200, 200)))["b64"]]}, 400,
                 "base64_string[1] holds a JPEG image of 200x200 pixels"),
                (b"x" * 200_001, 413, "--max_request_bytes")]:
            reply = plsc_post(server.url, body)
            assert reply.status_code == status and message in reply.json()["error"], reply.text
        wrong_method = httpx.get(server.url + plsc_route.ROUTE)
        assert wrong_method.status_code == 405 and "takes POST" in wrong_method.json()["error"]
        text = httpx.get(server.url + "/metrics").text
        assert ':tensorflow:serving:request_count{model_name="face",status="OK"}' in text
        assert ':tensorflow:serving:request_count{model_name="face",status="INVALID_ARGUMENT"}' \
               in text
        assert 'model_name="face",API="FaceClassifyService",entrypoint="REST"' in text


def test_plsc_route_model_choice_and_model_failures(models, monkeypatch):
    from images.serving.core import CoreOptions, ServerCore
    from images.serving.plsc_route import PLSCHandler
    core = plsc_core(models)
    core.start()
    body = json.dumps({"base64_string": [b64(make_image(5))["b64"]]}).encode()
    want = direct_images(models["face_a"], [make_image(5)])["embeddings"]
    try:
        status, payload, _ = PLSCHandler(core).process(body)
        assert status == 400 and "this server serves several (face, toy): start it with " \
                                 "--plsc_model_name=NAME" in payload["error"]
        status, payload, _ = PLSCHandler(core, "nope").process(body)
        assert (status, payload) == (404, {"error": "Servable not found for request: "
                                                    "Latest(nope)"})
        status, payload, _ = PLSCHandler(core, "toy").process(body)
        assert status == 400 and "model 'toy' has no signature taking encoded images" in \
            payload["error"]
        # One model served: the route needs no name.
        status, payload, name = PLSCHandler(ServerCore(CoreOptions(), [core.models["face"]]),
                                            timeout_ms=30000).process(body)
        assert (status, name) == (200, "face")
        assert_close(payload["instance"][0]["embedding"], want[0])
        # The model failing is reported as TF Serving reports it (INTERNAL: 500, the error).
        with core.use("face") as loaded:
            def fail(*args, **kwargs):
                raise tf.errors.InternalError(None, None, "the kernel exploded")
            monkeypatch.setattr(loaded.servable, "run", fail)
            status, payload, _ = PLSCHandler(core, "face").process(body)
            assert (status, payload) == (500, {"error": "model 'face' version 1 signature "
                                                        "'serving_default' failed: the kernel "
                                                        "exploded"})
            monkeypatch.setattr(loaded.servable, "run", lambda *args, **kwargs: {
                "embeddings": np.zeros((2, 8), np.float32)})
            status, payload, _ = PLSCHandler(core, "face").process(body)
            assert status == 500 and "returned 'embeddings' of float32 [2, 8] for 1 images" in \
                payload["error"]
    finally:
        core.stop(5)


def test_plsc_route_answers_503_when_the_queue_is_full(models):
    from face_service import FaceService as PLSCFaceService
    core = plsc_core(models, BatchingOptions(True, max_batch_size=4, batch_timeout_s=2.0,
                                             max_enqueued_batches=1, num_threads=1))
    image = b64(make_image(1))["b64"]
    with ThreadServer(core, extra_routers=[plsc_route.router(core, 1 << 20, "face")]) as server:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            waiting = [pool.submit(plsc_post, server.url, {"base64_string": [image]})
                       for _ in range(3)]
            assert wait_for(lambda: core.counters()["waiting"] == 3, 10)
            # 3 images wait for a batch of 4; 2 more would pass the bound of 1 batch.
            refused = plsc_post(server.url, {"base64_string": [image] * 2})
            assert refused.status_code == 503
            assert refused.json()["error"].startswith(
                "The batch scheduling queue to which this task was submitted is full")
            with PLSCFaceService(timeout=10) as fc:  # 503: the client tries its next server
                fc.connect(server.address)
                with pytest.raises(ServingError, match="no server could answer: The batch "
                                                       "scheduling queue"):
                    fc.encode([make_image(1)] * 2)
            assert [f.result().status_code for f in waiting] == [200, 200, 200]
        assert len(plsc_post(server.url, {"base64_string": [image] * 2}).json()["instance"]) == 2
