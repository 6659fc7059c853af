"""PLSC's serving API beside TF Serving's: ``POST /FaceClassifyService/inference``.

PLSC's server (Paddle Serving's ``FaceClassifyService``) took ``{"base64_string": ["<base64 of
an encoded image>", ...]}`` and answered ``{"instance": [{"embedding": [...]}, ...]}``, one
embedding per image in order; ``face_service.FaceService`` speaks it.  Here the route runs the
served model's signature that takes encoded images (a string input, ``image_bytes`` in models
exported by ``Entry.convert_for_prediction``; ``serving_default`` first) and returns its
``embeddings`` output (the only output when there is one).  Errors are ``{"error": ...}`` with
400 for a bad request or undecodable image, 503 when nothing is loaded or the queue is full.
"""
import asyncio
import base64
import binascii
import json
import logging

import numpy as np
from fastapi import Request
from fastapi.responses import Response

from images.serving.batching import BatcherClosedError, QueueFullError
from images.serving.manager import ModelUnavailableError
from images.serving.servable import is_bad_input_error, tf_error_message
from images.serving.signatures import DEFAULT_SIGNATURE

log = logging.getLogger("fastnn.serving")

ROUTE = "/FaceClassifyService/inference"
REQUEST_KEY = "base64_string"
OUTPUT_NAME = "embeddings"


class PLSCError(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def _reply(payload, status=200):
    return Response(json.dumps(payload, separators=(",", ":")), status_code=status,
                    media_type="application/json")


def parse_request(body):
    """The images of a PLSC request body (bytes), in order.

    Raises:
      PLSCError: not PLSC's shape, or a string that is not base64.
    """
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PLSCError("the request body is not JSON: %s" % e)
    if not isinstance(parsed, dict) or not isinstance(parsed.get(REQUEST_KEY), list):
        raise PLSCError("expected {\"%s\": [\"<base64 of an encoded image>\", ...]}"
                        % REQUEST_KEY)
    images = []
    for i, text in enumerate(parsed[REQUEST_KEY]):
        if not isinstance(text, str):
            raise PLSCError("%s[%d] is %s, not a base64 string"
                            % (REQUEST_KEY, i, type(text).__name__))
        try:
            # PLSC's client sends standard base64; URL-safe is accepted too.
            images.append(base64.b64decode(text.replace("-", "+").replace("_", "/"),
                                           validate=True))
        except (binascii.Error, ValueError) as e:
            raise PLSCError("%s[%d] is not valid base64: %s" % (REQUEST_KEY, i, e))
    if not images:
        raise PLSCError("%s is empty: send at least one image" % REQUEST_KEY)
    return images


def image_signature(servable):
    """``(signature, input key, output key)`` of the signature taking encoded images."""
    names = sorted(servable.signatures, key=lambda n: (n != DEFAULT_SIGNATURE, n))
    for name in names:
        sig = servable.signatures[name]
        strings = [k for k, spec in sig.inputs.items() if spec.is_string]
        if len(sig.inputs) == 1 and strings:
            outputs = list(sig.outputs)
            output = OUTPUT_NAME if OUTPUT_NAME in outputs else (
                outputs[0] if len(outputs) == 1 else None)
            if output is not None:
                return sig, strings[0], output
    raise PLSCError("the served model has no signature taking encoded images and returning "
                    "'%s' (export it with Entry.convert_for_prediction)" % OUTPUT_NAME)


def mount(app, manager, max_request_bytes=32 << 20):
    """Adds PLSC's route to ``app`` (the FastAPI app serving ``manager``'s model)."""

    async def run(images):
        with manager.use(None) as loaded:
            sig, input_key, output_key = image_signature(loaded.servable)
            inputs = {input_key: np.array(images, dtype=object)}
            batcher = loaded.batcher(sig.name)
            try:
                future = batcher.submit(inputs, len(images) if sig.batchable else None)
            except (QueueFullError, BatcherClosedError) as e:
                raise PLSCError(str(e), 503)
            try:
                outputs = await asyncio.wrap_future(future)
            except Exception as e:  # noqa: BLE001  mapped to a status below
                if is_bad_input_error(e):
                    raise PLSCError("the model could not process the images: %s"
                                    % tf_error_message(e))
                log.exception("PLSC route: the model failed")
                raise PLSCError("running the model failed: %s" % tf_error_message(e), 500)
        embeddings = np.asarray(outputs[output_key], dtype=np.float64)
        return {"instance": [{"embedding": row.tolist()} for row in embeddings]}

    @app.post(ROUTE, tags=["plsc"], summary="PLSC's FaceClassifyService: embeddings of "
              "base64 images")
    async def plsc_inference(request: Request):
        try:
            body = await request.body()
            if len(body) > max_request_bytes:
                raise PLSCError("request body is larger than the server's limit of %d bytes"
                                % max_request_bytes, 413)
            return _reply(await run(parse_request(body)))
        except PLSCError as e:
            return _reply({"error": str(e)}, e.status)
        except ModelUnavailableError as e:
            return _reply({"error": str(e)}, 503)

    return app
