"""One error type for the whole server, with TensorFlow Serving's status codes.

Every refusal is a :class:`ServingError` carrying a canonical status code name (``INVALID_ARGUMENT``,
``NOT_FOUND``, ...) and a message.  The REST API maps the code to an HTTP status with the same table
as TF Serving's HTTP server (``http_server.cc``), the gRPC API to the ``grpc.StatusCode`` of the
same name, so both front ends agree on what each failure is.
"""

# TF Serving's ToHTTPStatusCode table.
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


class ServingError(Exception):
    """A request the server cannot answer; ``code`` is a canonical status code name.

    Args:
      code: e.g. ``"INVALID_ARGUMENT"`` (HTTP 400) or ``"NOT_FOUND"`` (HTTP 404).
      message: what was wrong and, where it helps, what to send instead.
    """

    def __init__(self, code: str, message: str):
        if code not in HTTP_STATUS:
            raise ValueError("unknown status code %r" % code)
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


def invalid(message: str) -> ServingError:
    """An ``INVALID_ARGUMENT`` error (HTTP 400)."""
    return ServingError("INVALID_ARGUMENT", message)


def tf_error_code(error: Exception) -> str:
    """The canonical code of a TensorFlow ``OpError`` (``UNKNOWN`` for anything else)."""
    from tensorflow.core.protobuf import error_codes_pb2
    code = getattr(error, "error_code", None)
    if code is None:
        return "UNKNOWN"
    try:
        return error_codes_pb2.Code.Name(code)
    except ValueError:
        return "UNKNOWN"


def tf_error_message(error: Exception) -> str:
    """The useful part of a TensorFlow error: its message without graph-execution boilerplate."""
    message = getattr(error, "message", None) or str(error)
    lines = [line.strip() for line in message.splitlines()]
    kept = [line for line in lines
            if line and line != "Graph execution error:" and not line.startswith("[[")
            and not line.startswith("Detected at node") and not line.startswith("Stack trace")]
    return " ".join(kept) or message.strip()


# Errors TensorFlow raises because of the values a request fed, not because the model is broken:
# the request gets a 4xx.  UNIMPLEMENTED here means "no kernel for what was fed" (TF Serving
# would answer 501); it is the request that has to change, so it is a 400 here.
_REQUEST_CAUSED = {"INVALID_ARGUMENT": "INVALID_ARGUMENT", "OUT_OF_RANGE": "OUT_OF_RANGE",
                   "FAILED_PRECONDITION": "FAILED_PRECONDITION",
                   "UNIMPLEMENTED": "INVALID_ARGUMENT",
                   "RESOURCE_EXHAUSTED": "RESOURCE_EXHAUSTED",
                   "DEADLINE_EXCEEDED": "DEADLINE_EXCEEDED", "CANCELLED": "CANCELLED"}


def from_tf_error(error: Exception, what: str) -> ServingError:
    """A :class:`ServingError` for an exception raised while running a model.

    Args:
      error: what ``Session.run`` raised.
      what: names the call in the message, e.g. ``model 'x' version 1 signature 'y'``.
    """
    code = tf_error_code(error)
    message = tf_error_message(error)
    if code == "DEADLINE_EXCEEDED":
        return ServingError(code, "%s did not finish in time (--rest_api_timeout_in_ms, or the "
                                  "gRPC deadline): %s" % (what, message))
    if code in _REQUEST_CAUSED:
        return ServingError(_REQUEST_CAUSED[code], message)
    return ServingError("INTERNAL" if code == "UNKNOWN" else code,
                        "%s failed: %s" % (what, message))
