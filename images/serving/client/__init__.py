"""Clients of the model server (or any TF-Serving REST server), built on httpx and numpy.

They never import TensorFlow: a client process stays light.

* :class:`FaceService`: PLSC's client for embedding models::

      fc = FaceService()              # model_name="face"
      fc.connect("127.0.0.1:8010")    # connect again to add servers: requests go round-robin
      embeddings = fc.encode([jpeg_bytes, ...])   # one float32 vector per image
      fc.close()

  An embedding model returns embeddings, not classes: compare them (cosine or L2 distance) to
  decide whether two faces match.
* :class:`ImageClassifier`: the same for classification models, through ``:classify``.
* :class:`ServingClient`: one server and model; the raw predict, classify, status and metadata
  calls.

Command line: ``python -m images.serving.client embed|classify --server HOST:PORT --model_name NAME
files...``.
"""
import base64
import collections
import itertools
import os
import threading
from typing import Dict, List, Optional, Sequence, Union

import httpx
import numpy as np

Prediction = collections.namedtuple("Prediction", ["class_id", "label", "score"])


class ServingError(Exception):
    """The server refused a request or could not be reached.

    Attributes:
      status_code: the HTTP status, or None when the server could not be reached.
      server: ``host:port`` of the server.
    """

    def __init__(self, message, status_code=None, server=None):
        super().__init__(message)
        self.status_code = status_code
        self.server = server


def _base_url(server):
    server = server.strip()
    if not server:
        raise ValueError("empty server address; give HOST:PORT such as 127.0.0.1:8501")
    if "://" not in server:
        server = "http://" + server
    return server.rstrip("/")


def _b64(data, index):
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError("image %d is %s; pass the encoded file's bytes (e.g. "
                        "open(path, 'rb').read())" % (index, type(data).__name__))
    return {"b64": base64.b64encode(data).decode("ascii")}


class ServingClient:
    """Calls one model on one TF-Serving-compatible REST server.

    Args:
      server: ``host:port`` (or a full ``http://`` URL).
      model_name: the served model's name.
      version: a version number to pin, or None for whichever the server serves.
      timeout: seconds per request.
    """

    def __init__(self, server: str, model_name: str, version: Optional[int] = None,
                 timeout: float = 30.0):
        self.base_url = _base_url(server)
        self.server = self.base_url.split("://", 1)[1]
        self.model_name = model_name
        self.version = version
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def _path(self, suffix=""):
        path = "/v1/models/%s" % self.model_name
        if self.version is not None:
            path += "/versions/%d" % self.version
        return path + suffix

    def _call(self, method, path, payload=None):
        try:
            response = self._http.request(method, path, json=payload)
        except httpx.TransportError as e:
            raise ServingError("cannot reach the model server at %s: %s" % (self.server, e),
                               server=self.server) from e
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            message = body.get("error") if isinstance(body, dict) else None
            raise ServingError("%s (HTTP %d from %s)" % (message or response.text[:200],
                                                         response.status_code, self.server),
                               response.status_code, self.server)
        if not isinstance(body, dict):
            raise ServingError("%s answered with something that is not a JSON object"
                               % self.server, response.status_code, self.server)
        return body

    def status(self):
        """``model_version_status``: a list of ``{"version", "state", "status"}``."""
        return self._call("GET", self._path())["model_version_status"]

    def metadata(self):
        """The signature definitions, as ``{name: {"inputs", "outputs", "method_name"}}``."""
        return self._call("GET", self._path("/metadata"))["metadata"]["signature_def"][
            "signature_def"]

    def predict(self, instances=None, inputs=None, signature_name: Optional[str] = None):
        """``:predict``; give ``instances`` (row format) or ``inputs`` (columnar).

        Returns:
          The reply: ``{"predictions": ...}`` or ``{"outputs": ...}``.
        """
        if (instances is None) == (inputs is None):
            raise ValueError("give exactly one of instances (row format) or inputs (columnar)")
        payload = {"instances": instances} if instances is not None else {"inputs": inputs}
        if signature_name:
            payload["signature_name"] = signature_name
        return self._call("POST", self._path(":predict"), payload)

    def classify(self, examples: List[Dict], context: Optional[Dict] = None,
                 signature_name: Optional[str] = None):
        """``:classify``; returns ``results``: per example a list of ``[label, score]``."""
        payload = {"examples": examples}
        if context:
            payload["context"] = context
        if signature_name:
            payload["signature_name"] = signature_name
        return self._call("POST", self._path(":classify"), payload)["results"]

    def close(self):
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _RoundRobin:
    """Servers added by :meth:`connect`, used in turn; an unreachable or full server is skipped."""

    def __init__(self, model_name, signature_name, input_name, batch_size, timeout):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1, got %d" % batch_size)
        self.model_name = model_name
        self.signature_name = signature_name
        self.input_name = input_name
        self.batch_size = batch_size
        self.timeout = timeout
        self._clients: List[ServingClient] = []
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def connect(self, server: str):
        """Adds a server (``host:port``); requests rotate over every connected server."""
        self._clients.append(ServingClient(server, self.model_name, timeout=self.timeout))
        return self

    @property
    def servers(self):
        return [c.server for c in self._clients]

    def close(self):
        """Closes the connections to every server."""
        for client in self._clients:
            client.close()
        self._clients = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, call):
        if not self._clients:
            raise ServingError("not connected: call connect('host:port') first")
        with self._lock:
            start = next(self._turn)
        errors = []
        for i in range(len(self._clients)):
            client = self._clients[(start + i) % len(self._clients)]
            try:
                return call(client)
            except ServingError as e:
                # Unreachable (None) or overloaded (503): the next server may answer.
                if e.status_code not in (None, 503):
                    raise
                errors.append(str(e))
        raise ServingError("no server could answer: " + "; ".join(errors))

    def _chunks(self, images: Sequence[bytes]):
        encoded = [_b64(data, i) for i, data in enumerate(images)]
        for start in range(0, len(encoded), self.batch_size):
            yield encoded[start:start + self.batch_size]


class FaceService(_RoundRobin):
    """PLSC's serving client: embeddings of encoded images from an embedding model.

    Args:
      model_name: the served model's name (the server's ``--model_name``).
      signature_name: the signature taking encoded images.
      input_name: its input (``image_bytes`` in models exported by this project).
      output_name: the embedding output.
      batch_size: images per request; longer lists are split (each part to the next server).
      timeout: seconds per request.
    """

    def __init__(self, model_name="face", signature_name="serving_default",
                 input_name="image_bytes", output_name="embeddings", batch_size=64,
                 timeout=30.0):
        super().__init__(model_name, signature_name, input_name, batch_size, timeout)
        self.output_name = output_name

    def encode(self, images: Sequence[bytes]) -> List[np.ndarray]:
        """Returns one float32 embedding per encoded image (JPEG, PNG, ...), in order.

        Raises:
          TypeError: an element is not bytes.
          ServingError: the server refused the images (the message says why) or none answered.
        """
        embeddings = []
        for chunk in self._chunks(images):
            reply = self._send(lambda c: c.predict(inputs={self.input_name: chunk},
                                                   signature_name=self.signature_name))
            embeddings.extend(np.asarray(row, dtype=np.float32)
                              for row in self._embeddings(reply["outputs"]))
        return embeddings

    def _embeddings(self, outputs):
        if isinstance(outputs, dict):
            if self.output_name not in outputs:
                hint = (" it is a classification model: use ImageClassifier"
                        if "classes" in outputs or "probabilities" in outputs else "")
                raise ServingError("model '%s' returned no '%s' output (it returned: %s);%s"
                                   % (self.model_name, self.output_name,
                                      ", ".join(sorted(outputs)), hint))
            return outputs[self.output_name]
        return outputs  # a model with one output replies with the bare tensor


def load_labels(path: str) -> Dict[int, str]:
    """``{id: name}`` from a ``labels.txt`` (``<id>:<name>`` lines, as the converters write)."""
    from images.datasets import labels_file
    return labels_file.read_labels(os.path.dirname(os.path.abspath(path)),
                                   os.path.basename(path))


class ImageClassifier(_RoundRobin):
    """Ranked classes of encoded images from a classification model, through ``:classify``.

    Args:
      model_name: the served model's name.
      labels: ``{class id: name}`` or the path of a ``labels.txt``; None leaves names empty.
      signature_name: the signature taking encoded images.
      input_name: its input.
      batch_size: images per request.
      timeout: seconds per request.
    """

    def __init__(self, model_name, labels: Union[None, str, Dict[int, str]] = None,
                 signature_name="serving_default", input_name="image_bytes", batch_size=64,
                 timeout=30.0):
        super().__init__(model_name, signature_name, input_name, batch_size, timeout)
        self.labels = load_labels(labels) if isinstance(labels, str) else dict(labels or {})

    def classify(self, images: Sequence[bytes], top_k: Optional[int] = None
                 ) -> List[List[Prediction]]:
        """Per image, :class:`Prediction` ``(class_id, label, score)`` tuples, best first.

        Args:
          images: encoded image files' bytes.
          top_k: keep this many per image (default: as many as the model ranks).
        """
        results = []
        for chunk in self._chunks(images):
            examples = [{self.input_name: value} for value in chunk]
            reply = self._send(lambda c: c.classify(examples,
                                                    signature_name=self.signature_name))
            for ranked in reply:
                predictions = []
                for label, score in ranked[:top_k]:
                    class_id = int(label) if str(label).lstrip("-").isdigit() else label
                    predictions.append(Prediction(class_id, self.labels.get(class_id),
                                                  float(score)))
                results.append(predictions)
        return results
