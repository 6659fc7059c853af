"""The REST API: TensorFlow Serving's routes on FastAPI (OpenAPI description at ``/openapi.json``).

    GET  /v1/models/NAME[/versions/N]              version status
    GET  /v1/models/NAME[/versions/N]/metadata     signature definitions
    POST /v1/models/NAME[/versions/N]:predict      {"instances": [...]} or {"inputs": ...}
    POST /v1/models/NAME[/versions/N]:classify     {"examples": [...], "context": {...}}
    GET  /monitoring/prometheus/metrics            request and batching counters

Every error is ``{"error": "<what was wrong>"}``: 400 for a bad request, 404 for an unknown model
or version, 413 for a body over the size limit, 503 when the queue is full or nothing is loaded,
500 when the model itself fails.
"""
import asyncio
import collections
import contextlib
import json
import logging
from typing import Any, Dict, List, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from images.serving import codec, plsc_route
from images.serving.batching import BatcherClosedError, QueueFullError
from images.serving.codec import RequestError
from images.serving.manager import ModelManager, ModelNotFoundError, ModelUnavailableError
from images.serving.servable import is_bad_input_error, tf_error_message
from images.serving.signatures import DEFAULT_SIGNATURE

log = logging.getLogger("fastnn.serving")

DEFAULT_MAX_REQUEST_BYTES = 32 << 20


# -- OpenAPI documentation models (requests are parsed by the codec, which follows TF Serving) ----

class PredictBody(BaseModel):
    """A ``:predict`` request: exactly one of ``instances`` and ``inputs``."""
    signature_name: Optional[str] = Field(None, description="default: serving_default")
    instances: Optional[List[Any]] = Field(
        None, description="row format: one element per example; binary as {\"b64\": \"...\"}")
    inputs: Optional[Any] = Field(None, description="columnar format: whole tensors by name")


class ClassifyBody(BaseModel):
    """A ``:classify`` request (TF Serving's shape)."""
    signature_name: Optional[str] = None
    context: Optional[Dict[str, Any]] = Field(None, description="features shared by all examples")
    examples: List[Dict[str, Any]] = Field(..., description="features by name, one per example")


class PredictReply(BaseModel):
    predictions: Optional[Any] = Field(None, description="row format reply")
    outputs: Optional[Any] = Field(None, description="columnar format reply")


class ClassifyReply(BaseModel):
    results: List[List[List[Any]]] = Field(..., description="per example: [label, score] pairs")


class VersionStatus(BaseModel):
    version: str
    state: str
    status: Dict[str, str]


class StatusReply(BaseModel):
    model_version_status: List[VersionStatus]


class MetadataReply(BaseModel):
    model_spec: Dict[str, str]
    metadata: Dict[str, Any]


class ErrorReply(BaseModel):
    error: str


_ERRORS = {code: {"model": ErrorReply} for code in (400, 404, 413, 503)}


def _body_doc(model):
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


def _json_response(payload, status=200):
    # NaN and infinities are written as TF Serving writes them (NaN, Infinity).
    return Response(json.dumps(payload, separators=(",", ":")), status_code=status,
                    media_type="application/json")


def create_app(manager: ModelManager, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES):
    """The FastAPI application serving ``manager``'s model.

    Args:
      manager: the :class:`ModelManager`; started here if the caller has not started it, and
        stopped (after the requests in flight) when the server shuts down.
      max_request_bytes: larger request bodies get 413.
    """
    counts = collections.Counter()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if not manager.started:
            manager.start()
        yield
        # Uvicorn has already waited for the requests in flight; now free the sessions.
        await asyncio.get_running_loop().run_in_executor(None, manager.stop)

    app = FastAPI(title="fastnn model server",
                  description="TensorFlow Serving's REST API for model '%s'" % manager.model_name,
                  version="1", lifespan=lifespan)

    # -- errors raised by the framework itself, in the same {"error": ...} shape --------------

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        counts[("other", exc.status_code)] += 1
        detail = exc.detail
        if exc.status_code == 404:
            detail = ("no route %s %s; the API is /v1/models/NAME[/versions/N][/metadata|:predict"
                      "|:classify]" % (request.method, request.url.path))
        elif exc.status_code == 405:
            detail = "%s is not allowed on %s" % (request.method, request.url.path)
        return _json_response({"error": str(detail)}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc):
        return _json_response({"error": "invalid request: %s" % exc.errors()}, 400)

    # -- helpers -------------------------------------------------------------------------------

    async def read_json(request: Request):
        declared = request.headers.get("content-length")
        too_big = RequestError(
            "request body is larger than the server's limit of %d bytes (--max_request_bytes): "
            "send fewer instances per request or raise the limit" % max_request_bytes, 413)
        if declared is not None and declared.isdigit() and int(declared) > max_request_bytes:
            raise too_big
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_request_bytes:
                raise too_big
            chunks.append(chunk)
        body = b"".join(chunks)
        if not body:
            raise RequestError("the request body is empty; send a JSON object")
        try:
            parsed = json.loads(body)
        except UnicodeDecodeError as e:
            raise RequestError("the request body is not UTF-8 JSON: %s" % e)
        except json.JSONDecodeError as e:
            raise RequestError("the request body is not valid JSON: %s" % e)
        if not isinstance(parsed, dict):
            raise RequestError("the request body must be a JSON object, got %s"
                               % type(parsed).__name__)
        return parsed

    def check_model(name):
        if name != manager.model_name:
            raise ModelNotFoundError("model '%s' is not served here; this server serves '%s'"
                                     % (name, manager.model_name))

    def parse_version(text):
        if text is None:
            return None
        if not text.isdigit():
            raise RequestError("version must be a number, got '%s'" % text)
        return int(text)

    def signature_of(loaded, body):
        name = body.get("signature_name") or DEFAULT_SIGNATURE
        if not isinstance(name, str):
            raise RequestError("\"signature_name\" must be a string")
        signature = loaded.servable.signatures.get(name)
        if signature is None:
            raise RequestError("model '%s' version %d has no signature '%s'; it has: %s"
                               % (manager.model_name, loaded.version, name,
                                  ", ".join(sorted(loaded.servable.signatures))))
        return signature

    async def run_model(loaded, signature, inputs, rows):
        batcher = loaded.batcher(signature.name)
        try:
            future = batcher.submit(inputs, rows if signature.batchable else None)
        except QueueFullError as e:
            raise RequestError(str(e), 503)
        except BatcherClosedError as e:
            raise RequestError(str(e), 503)
        try:
            return await asyncio.wrap_future(future)
        except Exception as e:  # noqa: BLE001  mapped to a status below
            if is_bad_input_error(e):
                raise RequestError("the model could not process the input of signature '%s': %s"
                                   % (signature.name, tf_error_message(e)))
            log.exception("model '%s' failed", manager.model_name)
            raise RuntimeError("running model '%s' failed: %s"
                               % (manager.model_name, tf_error_message(e)))

    async def respond(api, handler):
        try:
            payload, status = await handler(), 200
        except RequestError as e:
            payload, status = {"error": e.message}, e.status_code
        except ModelNotFoundError as e:
            payload, status = {"error": str(e)}, 404
        except ModelUnavailableError as e:
            payload, status = {"error": str(e)}, 503
        except Exception as e:  # noqa: BLE001  the server keeps serving
            log.exception("%s failed", api)
            payload, status = {"error": str(e)}, 500
        counts[(api, status)] += 1
        return _json_response(payload, status)

    # -- endpoints -----------------------------------------------------------------------------

    async def predict(request, model_name, version):
        body = await read_json(request)
        check_model(model_name)
        with manager.use(parse_version(version)) as loaded:
            signature = signature_of(loaded, body)
            decoded = codec.decode_predict_request(body, signature)
            outputs = await run_model(loaded, signature, decoded.inputs, decoded.rows)
            manager.record_sample(signature.name, decoded.inputs)
            return codec.encode_predict_response(outputs, decoded)

    async def classify(request, model_name, version):
        body = await read_json(request)
        check_model(model_name)
        with manager.use(parse_version(version)) as loaded:
            signature = signature_of(loaded, body)
            inputs, rows = codec.decode_classify_request(body, signature, manager.model_name)
            outputs = await run_model(loaded, signature, inputs, rows)
            return codec.encode_classify_response(outputs, signature)

    async def status(model_name, version):
        check_model(model_name)
        return {"model_version_status": manager.status(parse_version(version))}

    async def metadata(model_name, version):
        check_model(model_name)
        with manager.use(parse_version(version)) as loaded:
            return {"model_spec": {"name": manager.model_name, "signature_name": "",
                                   "version": str(loaded.version)},
                    "metadata": {"signature_def": {
                        "signature_def": loaded.servable.signature_def_json()}}}

    predict_doc = dict(responses={**_ERRORS, 200: {"model": PredictReply}},
                       openapi_extra=_body_doc(PredictBody), tags=["predict"])
    classify_doc = dict(responses={**_ERRORS, 200: {"model": ClassifyReply}},
                        openapi_extra=_body_doc(ClassifyBody), tags=["classify"])

    @app.post("/v1/models/{model_name}:predict", summary="Predict with the served version",
              **predict_doc)
    async def predict_latest(request: Request, model_name: str):
        return await respond("predict", lambda: predict(request, model_name, None))

    @app.post("/v1/models/{model_name}/versions/{version}:predict",
              summary="Predict with one version", **predict_doc)
    async def predict_version(request: Request, model_name: str, version: str):
        return await respond("predict", lambda: predict(request, model_name, version))

    @app.post("/v1/models/{model_name}:classify", summary="Classify with the served version",
              **classify_doc)
    async def classify_latest(request: Request, model_name: str):
        return await respond("classify", lambda: classify(request, model_name, None))

    @app.post("/v1/models/{model_name}/versions/{version}:classify",
              summary="Classify with one version", **classify_doc)
    async def classify_version(request: Request, model_name: str, version: str):
        return await respond("classify", lambda: classify(request, model_name, version))

    @app.post("/v1/models/{model_name}:{method}", summary="Other methods (not supported)",
              responses=_ERRORS, tags=["other"])
    @app.post("/v1/models/{model_name}/versions/{version}:{method}",
              summary="Other methods (not supported)", responses=_ERRORS, tags=["other"])
    async def other_method(request: Request, model_name: str, method: str,
                           version: Optional[str] = None):
        async def refuse():
            await read_json(request)
            raise RequestError("method ':%s' is not supported; this server answers :predict and "
                               ":classify" % method)
        return await respond("other", refuse)

    @app.get("/v1/models/{model_name}", summary="Status of every version",
             responses={**_ERRORS, 200: {"model": StatusReply}}, tags=["status"])
    async def status_all(model_name: str):
        return await respond("status", lambda: status(model_name, None))

    @app.get("/v1/models/{model_name}/versions/{version}", summary="Status of one version",
             responses={**_ERRORS, 200: {"model": StatusReply}}, tags=["status"])
    async def status_version(model_name: str, version: str):
        return await respond("status", lambda: status(model_name, version))

    @app.get("/v1/models/{model_name}/metadata", summary="Signatures of the served version",
             responses={**_ERRORS, 200: {"model": MetadataReply}}, tags=["metadata"])
    async def metadata_latest(model_name: str):
        return await respond("metadata", lambda: metadata(model_name, None))

    @app.get("/v1/models/{model_name}/versions/{version}/metadata",
             summary="Signatures of one version",
             responses={**_ERRORS, 200: {"model": MetadataReply}}, tags=["metadata"])
    async def metadata_version(model_name: str, version: str):
        return await respond("metadata", lambda: metadata(model_name, version))

    @app.get("/monitoring/prometheus/metrics", summary="Counters in Prometheus text format",
             tags=["monitoring"])
    async def metrics():
        label = 'model="%s"' % manager.model_name
        lines = ["# TYPE fastnn_serving_requests_total counter"]
        for (api, code), n in sorted(counts.items()):
            lines.append('fastnn_serving_requests_total{%s,api="%s",code="%d"} %d'
                         % (label, api, code, n))
        totals = manager.counters()
        for key, help_text in (("batches", "model calls"),
                               ("requests", "requests answered by those calls"),
                               ("rows", "examples in those calls")):
            lines.append("# HELP fastnn_serving_model_%s_total %s" % (key, help_text))
            lines.append("# TYPE fastnn_serving_model_%s_total counter" % key)
            lines.append("fastnn_serving_model_%s_total{%s} %d" % (key, label, totals[key]))
        lines.append("# TYPE fastnn_serving_queue_waiting gauge")
        lines.append("fastnn_serving_queue_waiting{%s} %d" % (label, totals["waiting"]))
        lines.append("# TYPE fastnn_serving_model_version gauge")
        lines.append("fastnn_serving_model_version{%s} %d"
                     % (label, manager.current_version or 0))
        return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    plsc_route.mount(app, manager, max_request_bytes)  # PLSC's /FaceClassifyService/inference
    return app
