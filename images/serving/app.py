"""The REST API: TensorFlow Serving's routes, status codes and JSON, on FastAPI.

    GET  /v1/models/NAME[/versions/N|/labels/L]              version status
    GET  /v1/models/NAME[/versions/N|/labels/L]/metadata     signature definitions
    POST /v1/models/NAME[/versions/N|/labels/L]:predict      {"instances": [...]} or {"inputs": ...}
    POST /v1/models/NAME[/versions/N|/labels/L]:classify     {"examples": [...], "context": {...}}
    POST /v1/models/NAME[/versions/N|/labels/L]:regress      {"examples": [...], "context": {...}}
    GET  /monitoring/prometheus/metrics                      with --monitoring_config_file

Every path under ``/v1/`` is parsed as TF Serving's HTTP handler parses it (the same regular
expressions, case-insensitive; ``/versions/`` takes ASCII digits), so a path or method it does not
know gets its answer: 400 ``Malformed request``.  Errors are ``{"error": "<message>"}`` with TF
Serving's mapping of status codes (400 bad request, 404 unknown model or version, 503 overload or
shutdown, 504 past ``--rest_api_timeout_in_ms``).  The OpenAPI description (``/openapi.json``,
``/docs``) documents the routes.

Other modules add routes with ``create_app(core, extra_routers=[router])``: their routers are
matched before the ``/v1/`` catch-all.
"""
import asyncio
import concurrent.futures
import json
import logging
import re
import time
from typing import Any, Dict, List, Optional, Sequence, Union
from urllib.parse import unquote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from google.protobuf import json_format
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from images.serving import codec, examples
from images.serving import metrics as m
from images.serving.core import ServerCore
from images.serving.errors import ServingError, invalid
from images.serving.manager import ModelManager

log = logging.getLogger("fastnn.serving")

DEFAULT_MAX_REQUEST_BYTES = 32 << 20
DEFAULT_TIMEOUT_MS = 30000

# TF Serving's kPredictionApiGegex and kModelStatusApiRegex (http_rest_api_util.cc), with [0-9]
# for RE2's ASCII \d.
PREDICT_PATH = re.compile(r"/v1/models/([^/:]+)(?:(?:/versions/([0-9]+))|(?:/labels/([^/:]+)))?"
                          r":(classify|regress|predict)", re.IGNORECASE)
STATUS_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/([0-9]+))|"
                         r"(?:/labels/([^/:]+)))?(?:/(metadata))?", re.IGNORECASE)
API_PREFIX = re.compile(r"/v1/", re.IGNORECASE)
_INT64_MAX = 2 ** 63 - 1


# -- OpenAPI documentation models (bodies are parsed by the codec, which follows TF Serving) -----

class PredictBody(BaseModel):
    """A ``:predict`` request: exactly one of ``instances`` and ``inputs``."""
    signature_name: Optional[str] = Field(None, description="default: serving_default")
    instances: Optional[List[Any]] = Field(
        None, description="row format: one element per example; binary as {\"b64\": \"...\"}")
    inputs: Optional[Any] = Field(None, description="columnar format: whole tensors by name")


class ExamplesBody(BaseModel):
    """A ``:classify`` or ``:regress`` request (TF Serving's shape)."""
    signature_name: Optional[str] = None
    context: Optional[Dict[str, Any]] = Field(None, description="features shared by all examples")
    examples: List[Dict[str, Any]] = Field(..., description="features by name, one per example")


class ErrorReply(BaseModel):
    error: str


def _json(payload, status=200, headers=None):
    # NaN and infinities are written as TF Serving writes them (NaN, Infinity).
    return Response(json.dumps(payload, separators=(",", ":")), status_code=status,
                    media_type="application/json", headers=headers)


def _proto_json(message, preserve_names):
    return json_format.MessageToDict(message, including_default_value_fields=True,
                                     preserving_proto_field_name=preserve_names)


class RestHandler:
    """TF Serving's HttpRestApiHandler on a :class:`ServerCore` (no I/O: testable alone).

    Args:
      core: the models.
      timeout_ms: TF Serving's ``--rest_api_timeout_in_ms`` (0: none).
    """

    def __init__(self, core: ServerCore, timeout_ms: int = DEFAULT_TIMEOUT_MS):
        self.core = core
        self.timeout_ms = timeout_ms

    def process(self, method: str, path: str, body: bytes):
        """Answers one request; returns ``(http_status, payload, model_name, api)``."""
        seen = {"model_name": "", "api": ""}
        try:
            payload = self._process(method, path, body, seen)
            code, status = "OK", 200
        except ServingError as e:
            code, status, payload = e.code, e.http_status, {"error": e.message}
        except Exception as e:  # noqa: BLE001  the server keeps serving; the log has the trace
            log.exception("%s %s failed", method, path)
            code, status = "INTERNAL", 500
            payload = {"error": "internal error: %s" % e}
        self.core.metrics.add(m.REQUEST_COUNT, model_name=seen["model_name"], status=code)
        return status, payload, seen["model_name"], seen["api"]

    def _process(self, method, path, body, seen):
        malformed = invalid("Malformed request: %s %s" % (method, path))
        match = None
        if method == "POST":
            match = PREDICT_PATH.fullmatch(path)
        elif method == "GET":
            match = STATUS_PATH.fullmatch(path)
        if match is None:
            raise malformed
        name, version_text, label, tail = match.groups()
        name = unquote(name or "")
        seen["model_name"] = name
        version = None
        if version_text:
            version = int(version_text)
            if version > _INT64_MAX:
                raise invalid("Failed to convert version: %s to numeric." % version_text)
        if label:
            label = unquote(label)
        if method == "POST":
            seen["api"] = tail
            if tail == "predict":
                return self.predict(name, version, label, body)
            if tail in ("classify", "regress"):
                return self.examples(tail, name, version, label, body)
            raise malformed  # TF Serving's methods are case-sensitive past the regex
        if not name:
            raise invalid("Missing model name in request.")
        if tail == "metadata":
            return self.metadata(name, version, label)
        return self.status(name, version, label)

    def _deadline(self):
        return time.monotonic() + self.timeout_ms / 1000.0 if self.timeout_ms > 0 else None

    def predict(self, name, version, label, body):
        doc = codec.parse_body(body)
        signature_name = codec.signature_name_of(doc)
        with self.core.use(name, version, label) as loaded:
            signature = loaded.servable.signatures.get(signature_name or "serving_default")
            if signature is None:
                raise invalid("Serving signature name: \"%s\" not found in signature def"
                              % (signature_name or "serving_default"))
            request = codec.decode_predict_request(doc, signature)
            outputs = self.core.inference.predict(loaded, signature.name, request.inputs,
                                                  deadline=self._deadline())
            return codec.encode_predict_response(outputs, request.row_format)

    def examples(self, method, name, version, label, body):
        from tensorflow_serving.apis import input_pb2
        doc = codec.parse_body(body)
        signature_name = codec.signature_name_of(doc)
        input_proto = examples.input_from_json(doc, input_pb2.Input(), method)
        with self.core.use(name, version, label) as loaded:
            if method == "classify":
                result = self.core.inference.classify(loaded, signature_name, input_proto,
                                                      self._deadline())
                return {"results": [[[c.label, codec.float_json(c.score)] for c in row.classes]
                                    for row in result.classifications]}
            result = self.core.inference.regress(loaded, signature_name, input_proto,
                                                 self._deadline())
            return {"results": [codec.float_json(r.value) for r in result.regressions]}

    def status(self, name, version, label):
        from tensorflow_serving.apis import get_model_status_pb2
        response = get_model_status_pb2.GetModelStatusResponse()
        fill_status(response, self.core.status(name, version, label))
        return _proto_json(response, preserve_names=False)

    def metadata(self, name, version, label):
        with self.core.use(name, version, label) as loaded:
            spec = {"name": name, "signature_name": "", "version": str(loaded.version)}
            return {"model_spec": spec,
                    "metadata": {"signature_def": _proto_json(
                        loaded.servable.signature_def_map(), preserve_names=True)}}


class BodyTooLarge(Exception):
    """A request body over the server's ``--max_request_bytes`` (answered with 413)."""


async def read_body(request: Request, max_request_bytes: int) -> bytes:
    """The request body, read no further than ``max_request_bytes``.

    Raises:
      BodyTooLarge: the declared or the received length is over the limit.
      ClientDisconnect: the client left before sending it all.
    """
    too_large = BodyTooLarge("request body is larger than the server's limit of %d bytes "
                             "(--max_request_bytes): send fewer examples per request"
                             % max_request_bytes)
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_request_bytes:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_request_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def fill_status(response, states):
    """Fills a GetModelStatusResponse from ``[(version, state, error)]``."""
    from tensorflow_serving.apis import get_model_status_pb2
    for version, state, error in states:
        item = response.model_version_status.add()
        item.version = version
        item.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
        item.status.error_code = 2 if error else 0  # UNKNOWN or OK
        item.status.error_message = error
    return response


def create_app(core: Union[ServerCore, ModelManager],
               max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
               timeout_ms: int = DEFAULT_TIMEOUT_MS, metrics_path: Optional[str] = None,
               cors: bool = False, num_threads: int = 0,
               extra_routers: Sequence[APIRouter] = (), on_shutdown: Sequence = ()) -> FastAPI:
    """The FastAPI application serving ``core``'s models with TF Serving's REST API.

    Args:
      core: a :class:`ServerCore`, or one :class:`ModelManager` to serve alone.  Started here if
        not started yet; stopped (after the requests in flight) when the server shuts down.
      max_request_bytes: larger request bodies get 413.
      timeout_ms: TF Serving's ``--rest_api_timeout_in_ms`` (0: no limit).
      metrics_path: where Prometheus metrics are served (None: not served, as TF Serving without
        a ``--monitoring_config_file``).
      cors: add CORS headers (``--rest_api_enable_cors_support``).
      num_threads: threads that parse requests and run unbatched models (0: 4 per core, or 128
        with batching on, since requests waiting in a batch queue hold one each).
      extra_routers: more routes, matched before the ``/v1/`` catch-all.
      on_shutdown: callables run when the REST server stops, before the models are unloaded
        (the gRPC server's stop).
    """
    import os
    if isinstance(core, ModelManager):
        core = ServerCore.single(core)
    handler = RestHandler(core, timeout_ms)
    if not num_threads:
        num_threads = 128 if core.scheduler is not None else 4 * (os.cpu_count() or 1)
    executor = concurrent.futures.ThreadPoolExecutor(num_threads, thread_name_prefix="rest")
    cors_headers = {"Access-Control-Allow-Origin": "*",
                    "Access-Control-Allow-Methods": "POST, GET",
                    "Access-Control-Allow-Headers": "Content-Type"} if cors else None

    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if not core.started:
            core.start()
        yield
        for fn in on_shutdown:
            await asyncio.get_running_loop().run_in_executor(None, fn)
        # Uvicorn has already waited for the requests in flight; now free the sessions.
        await asyncio.get_running_loop().run_in_executor(None, core.stop)
        executor.shutdown(wait=False)

    names = ", ".join(sorted(core.models)) or "(none yet)"
    app = FastAPI(title="fastnn model server",
                  description="TensorFlow Serving's REST API; models: %s" % names,
                  version="1", lifespan=lifespan)
    app.state.core = core
    app.state.executor = executor  # extra routers run their blocking work on it too

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        detail = exc.detail
        if exc.status_code == 404:
            detail = "no route %s %s; the API is under /v1/models/" % (request.method,
                                                                       request.url.path)
        return _json({"error": str(detail)}, exc.status_code, cors_headers)

    async def dispatch(request: Request):
        start = time.monotonic()
        method = request.method
        path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        path = path.split("?", 1)[0]
        try:
            body = await read_body(request, max_request_bytes)
        except ClientDisconnect:
            return Response(status_code=499)  # nobody reads it: the client left
        except BodyTooLarge as e:
            core.metrics.add(m.REQUEST_COUNT, model_name="", status="INVALID_ARGUMENT")
            return _json({"error": str(e)}, 413, cors_headers)
        if method == "OPTIONS":
            origin = request.headers.get("origin", "")
            if re.search(r"https?://", origin):
                return Response(status_code=200, headers=cors_headers)
            return _json({"error": "Origin header is missing in CORS preflight"}, 400,
                         cors_headers)
        status, payload, model_name, api = await asyncio.get_running_loop().run_in_executor(
            executor, handler.process, method, path, body)
        if status == 200:
            core.metrics.add(m.REQUEST_LATENCY, (time.monotonic() - start) * 1e6,
                             model_name=model_name, API=api, entrypoint="REST")
        return _json(payload, status, cors_headers)

    for router in extra_routers:
        app.include_router(router)

    if metrics_path:
        async def prometheus(request: Request):
            return Response(core.metrics.render(), media_type="text/plain")
        app.add_api_route(metrics_path, prometheus, methods=["GET"], tags=["monitoring"],
                          summary="Metrics in Prometheus text format")

    errors = {400: {"model": ErrorReply}, 404: {"model": ErrorReply},
              503: {"model": ErrorReply}}

    def body_doc(model):
        return {"requestBody": {"required": True, "content": {
            "application/json": {"schema": model.model_json_schema()}}}}

    # Documented routes: every one calls the same dispatcher, which parses the raw path itself,
    # so a request is answered the same whichever route matched it.
    for prefix, what in (("/v1/models/{model_name}", "the latest version"),
                         ("/v1/models/{model_name}/versions/{version}", "one version"),
                         ("/v1/models/{model_name}/labels/{label}", "the labelled version")):
        app.add_api_route(prefix, dispatch, methods=["GET"], tags=["status"],
                          summary="Status of %s" % what, responses=errors)
        app.add_api_route(prefix + "/metadata", dispatch, methods=["GET"], tags=["metadata"],
                          summary="Signatures of %s" % what, responses=errors)
        app.add_api_route(prefix + ":predict", dispatch, methods=["POST"], tags=["predict"],
                          summary="Predict with %s" % what, responses=errors,
                          openapi_extra=body_doc(PredictBody))
        for verb in ("classify", "regress"):
            app.add_api_route(prefix + ":" + verb, dispatch, methods=["POST"], tags=[verb],
                              summary="%s with %s" % (verb.capitalize(), what),
                              responses=errors, openapi_extra=body_doc(ExamplesBody))
    app.add_api_route("/v1/{rest:path}", dispatch, include_in_schema=False,
                      methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
    app.add_api_route("/V1/{rest:path}", dispatch, include_in_schema=False,
                      methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])

    async def other_case(request: Request):
        # TF Serving matches /v1/ case-insensitively (/V1/, /v1/MODELS/...).
        if API_PREFIX.match(request.url.path):
            return await dispatch(request)
        raise StarletteHTTPException(404)

    app.add_api_route("/{other:path}", other_case, include_in_schema=False,
                      methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
    return app
