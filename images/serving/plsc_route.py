"""PLSC's serving API beside TF Serving's: ``POST /FaceClassifyService/inference``.

PLSC's server (Paddle Serving's ``FaceClassifyService``) took ``{"base64_string": ["<base64 of
an encoded image>", ...]}`` and answered ``{"instance": [{"embedding": [...]}, ...]}``, one
embedding per image in order; ``face_service.FaceService`` speaks it.

Which model: PLSC's server served one model.  Here the route runs the model named by
``--plsc_model_name`` (``model_name`` below) or, when that is empty, the only model the server
serves; with several models and no name every request gets 400 saying to set the flag.  The
latest available version is used.  The route runs the model's signature that takes encoded images
(one string input, ``image_bytes`` in models exported by ``Entry.convert_for_prediction``;
``serving_default`` is looked at first) and returns its ``embeddings`` output (or its only
output), through the same inference path, batch queues, image-size limit and metrics as
``:predict``.

Errors are TF Serving's (:mod:`images.serving.errors`), as ``{"error": "<message>"}``: 400 for a
body that is not PLSC's shape, a string that is not base64, an image the model cannot decode or an
image over ``--max_image_pixels``; 404 when the model is not served (or has no version loaded
yet); 413 for a body over ``--max_request_bytes``; 503 when the batch queue is full or the server
is shutting down (``FaceService`` then tries its next server); 504 past
``--rest_api_timeout_in_ms``; 500 only when the model itself fails, as TF Serving reports it.
"""
import asyncio
import base64
import binascii
import json
import logging
import time
from typing import List

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from images.serving import codec
from images.serving.app import BodyTooLarge, read_body
from images.serving import metrics as m
from images.serving.core import ServerCore
from images.serving.errors import ServingError, invalid
from images.serving.image_limits import check_images
from images.serving.signatures import DEFAULT_SIGNATURE, Signature

log = logging.getLogger("fastnn.serving")

ROUTE = "/FaceClassifyService/inference"
REQUEST_KEY = "base64_string"
OUTPUT_NAME = "embeddings"
API_NAME = "FaceClassifyService"  # the API label of this route's metrics
_SHAPE = "expected {\"%s\": [\"<base64 of an encoded image>\", ...]}" % REQUEST_KEY


def _reply(payload, status=200):
    return Response(json.dumps(payload, separators=(",", ":")), status_code=status,
                    media_type="application/json")


def parse_request(body: bytes) -> List[bytes]:
    """The images of a PLSC request body, in order.

    Raises:
      ServingError: INVALID_ARGUMENT: not JSON, not PLSC's shape, or a string that is not base64.
    """
    doc = codec.parse_body(body)
    texts = doc.get(REQUEST_KEY)
    if not isinstance(texts, list):
        raise invalid("%s; got %s" % (_SHAPE, "no \"%s\" key" % REQUEST_KEY if texts is None
                                      else "\"%s\" of JSON type %s"
                                      % (REQUEST_KEY, codec.json_type(texts))))
    images = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise invalid("%s[%d] is of JSON type %s, not a base64 string"
                          % (REQUEST_KEY, i, codec.json_type(text)))
        try:
            # PLSC's client sends standard base64; URL-safe is accepted too.
            images.append(base64.b64decode(text.replace("-", "+").replace("_", "/"),
                                           validate=True))
        except (binascii.Error, ValueError) as e:
            raise invalid("%s[%d] is not valid base64: %s" % (REQUEST_KEY, i, e))
    if not images:
        raise invalid("%s is empty: send at least one image" % REQUEST_KEY)
    return images


def image_signature(servable, model_name: str):
    """``(signature, input key, output key)`` of the signature taking encoded images.

    Raises:
      ServingError: FAILED_PRECONDITION (HTTP 400) when the model has none.
    """
    names = sorted(servable.signatures, key=lambda n: (n != DEFAULT_SIGNATURE, n))
    for name in names:
        sig: Signature = servable.signatures[name]
        strings = [k for k, spec in sig.inputs.items() if spec.is_string]
        if len(sig.inputs) == 1 and strings:
            outputs = list(sig.outputs)
            output = OUTPUT_NAME if OUTPUT_NAME in outputs else (
                outputs[0] if len(outputs) == 1 else None)
            if output is not None:
                return sig, strings[0], output
    raise ServingError("FAILED_PRECONDITION",
                       "model '%s' has no signature taking encoded images (one string input) "
                       "and returning '%s' (export it with Entry.convert_for_prediction)"
                       % (model_name, OUTPUT_NAME))


def served_model(core: ServerCore, model_name: str = "") -> str:
    """The model the route runs: ``model_name``, or the only one ``core`` serves.

    Raises:
      ServingError: FAILED_PRECONDITION (HTTP 400) when no name is set and the server does not
        serve exactly one model.
    """
    if model_name:
        return model_name
    names = sorted(core.models)
    if len(names) == 1:
        return names[0]
    raise ServingError("FAILED_PRECONDITION",
                       "%s runs one model, and this server serves %s: start it with "
                       "--plsc_model_name=NAME to choose the model"
                       % (ROUTE, "several (%s)" % ", ".join(names) if names else "none"))


class PLSCHandler:
    """Answers PLSC requests on a :class:`ServerCore` (no I/O: testable alone).

    Args:
      core: the models.
      model_name: the model to run ("" : the only one served).
      timeout_ms: TF Serving's ``--rest_api_timeout_in_ms`` (0: none).
    """

    def __init__(self, core: ServerCore, model_name: str = "", timeout_ms: int = 0):
        self.core = core
        self.model_name = model_name
        self.timeout_ms = timeout_ms

    def process(self, body: bytes):
        """Answers one request body; returns ``(http_status, payload, model_name)``."""
        name = self.model_name
        try:
            images = parse_request(body)  # a bad body is refused whichever model serves
            name = served_model(self.core, self.model_name)
            payload = self.embeddings(name, images)
            code, status = "OK", 200
        except ServingError as e:
            code, status, payload = e.code, e.http_status, {"error": e.message}
        except Exception as e:  # noqa: BLE001  the server keeps serving; the log has the trace
            log.exception("%s failed", ROUTE)
            code, status = "INTERNAL", 500
            payload = {"error": "internal error: %s" % e}
        self.core.metrics.add(m.REQUEST_COUNT, model_name=name, status=code)
        return status, payload, name

    def embeddings(self, name: str, images: List[bytes]):
        """``{"instance": [{"embedding": [...]}, ...]}`` for encoded ``images``."""
        inference = self.core.inference
        for i, data in enumerate(images):
            check_images([data], inference.max_image_pixels, "%s[%d]" % (REQUEST_KEY, i))
        deadline = time.monotonic() + self.timeout_ms / 1000.0 if self.timeout_ms > 0 else None
        with self.core.use(name) as loaded:
            sig, input_key, output_key = image_signature(loaded.servable, name)
            array = np.empty(len(images), dtype=object)
            array[:] = images
            try:
                outputs = inference.predict(loaded, sig.name, {input_key: array},
                                            deadline=deadline)
            except ServingError as e:
                if e.code != "INVALID_ARGUMENT":
                    raise
                raise invalid("the model could not process the images: %s" % e.message)
        embeddings = np.asarray(outputs[output_key])
        numeric = embeddings.dtype.kind in "fiu" or embeddings.dtype.name == "bfloat16"
        if embeddings.ndim != 2 or embeddings.shape[0] != len(images) or not numeric:
            raise ServingError("INTERNAL", "model '%s' returned '%s' of %s %s for %d images; "
                               "PLSC's route needs one numeric vector per image"
                               % (name, output_key, embeddings.dtype, list(embeddings.shape),
                                  len(images)))
        # float32 as the shortest decimal that reads back the same, as :predict writes it.
        return {"instance": [{"embedding": row} for row in codec.to_json(embeddings, output_key)]}


def router(core: ServerCore, max_request_bytes: int, model_name: str = "",
           timeout_ms: int = 0) -> APIRouter:
    """PLSC's route on ``core``'s models, for ``create_app(core, extra_routers=[...])``.

    Args:
      core: the models (the app's :class:`ServerCore`).
      max_request_bytes: larger bodies get 413 (``--max_request_bytes``).
      model_name: the model to run (``--plsc_model_name``; "": the only one served).
      timeout_ms: TF Serving's ``--rest_api_timeout_in_ms`` (0: none).
    """
    handler = PLSCHandler(core, model_name, timeout_ms)
    routes = APIRouter()

    @routes.post(ROUTE, tags=["plsc"],
                 summary="PLSC's FaceClassifyService: embeddings of base64 images",
                 description="Body {\"base64_string\": [...]}; reply {\"instance\": "
                             "[{\"embedding\": [...]}, ...]}")
    async def plsc_inference(request: Request):
        start = time.monotonic()
        try:
            body = await read_body(request, max_request_bytes)
        except ClientDisconnect:
            return Response(status_code=499)  # nobody reads it: the client left
        except BodyTooLarge as e:
            core.metrics.add(m.REQUEST_COUNT, model_name=model_name, status="INVALID_ARGUMENT")
            return _reply({"error": str(e)}, 413)
        # The model runs on the app's request threads (create_app's), never on the event loop;
        # in an app without them, on the loop's default pool.
        executor = getattr(request.app.state, "executor", None)
        status, payload, name = await asyncio.get_running_loop().run_in_executor(
            executor, handler.process, body)
        if status == 200:
            core.metrics.add(m.REQUEST_LATENCY, (time.monotonic() - start) * 1e6,
                             model_name=name, API=API_NAME, entrypoint="REST")
        return _reply(payload, status)

    # Without this the server's catch-all would answer other methods with 404.
    @routes.api_route(ROUTE, methods=["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"],
                      include_in_schema=False)
    async def plsc_other_method(request: Request):
        return Response(json.dumps({"error": "%s takes POST, not %s" % (ROUTE, request.method)}),
                        status_code=405, media_type="application/json", headers={"Allow": "POST"})

    return routes
