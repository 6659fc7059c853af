"""PLSC's serving client: ``from face_service import FaceService``.

    fc = FaceService()
    fc.connect('127.0.0.1:8010')          # the default address; connect again to add servers
    result = fc.encode([jpeg_bytes])      # a list of embeddings (lists of floats)
    fc.close()

It speaks PLSC's wire format, ``POST /FaceClassifyService/inference`` with
``{"base64_string": [...]}`` -> ``{"instance": [{"embedding": [...]}, ...]}``, which the model
server of :mod:`images.serving` answers on its REST port beside TF Serving's routes, with the
model of its ``--plsc_model_name`` (``PLSCServer`` serves one, ``face``), as PLSC's own server did.
The embedding is a face's vector, not a class: compare embeddings (cosine similarity, or the
squared L2 distance of normalised ones) to decide whether two faces match.

Built on :class:`images.serving.client.FaceService` (round-robin over the connected servers,
skipping one that cannot be reached or answers 503: queue full or shutting down).  Where PLSC's
``infer`` returned ``'retry'`` or ``'fail'`` strings, this one raises :class:`ServingError` with
the server's message and HTTP status.
"""
import json

from images.serving import client as _client
from images.serving.client import ServingError

__all__ = ["FaceService", "ServingError", "DEFAULT_SERVER", "ROUTE"]

DEFAULT_SERVER = "127.0.0.1:8010"
ROUTE = "/FaceClassifyService/inference"


class FaceService(_client.FaceService):
    """PLSC's ``FaceService`` (serving/client/face_service/face_service.py).

    Args:
      batch_size: images per request; longer lists are split (each part to the next server).
      timeout: seconds per request.
    """

    def __init__(self, batch_size=64, timeout=30.0):
        super().__init__(model_name="face", batch_size=batch_size, timeout=timeout)

    def connect(self, server=DEFAULT_SERVER):
        """Adds a server (``host:port``, default PLSC's ``127.0.0.1:8010``)."""
        return super().connect(server)

    def connect_all_server(self, server_list):
        """Adds every server of ``server_list``."""
        for server in server_list:
            self.connect(server)
        return self

    def infer(self, request_msg):
        """Sends one PLSC request (its JSON text, bytes or dict) to the next server; returns the
        decoded reply ``{"instance": [{"embedding": [...]}, ...]}``.

        Raises:
          ServingError: the server refused the request (the message says why) or none answered.
        """
        payload = json.loads(request_msg) if isinstance(request_msg, (str, bytes)) \
            else request_msg
        return self._send(lambda c: c._call("POST", ROUTE, payload))

    def encode(self, images):
        """One embedding (a list of floats) per encoded image (JPEG, PNG, ...), in order."""
        result = []
        images = list(images)
        for start in range(0, len(images), self.batch_size):
            chunk = [_client._b64(data, start + i)["b64"]
                     for i, data in enumerate(images[start:start + self.batch_size])]
            reply = self.infer({"base64_string": chunk})
            result.extend(item["embedding"] for item in reply["instance"])
        return result
