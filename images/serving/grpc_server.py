"""The gRPC API: TF Serving's PredictionService and ModelService, with its own protos.

The services and messages come from the ``tensorflow-serving-api`` package (installed without its
``tensorflow`` dependency, beside tensorflow-cpu), so clients written for TF Serving connect
unchanged: ``Predict``, ``Classify``, ``Regress``, ``MultiInference`` and ``GetModelMetadata`` of
``tensorflow.serving.PredictionService``, ``GetModelStatus`` and ``HandleReloadConfigRequest`` of
``tensorflow.serving.ModelService``.  Failures carry the status code TF Serving gives them.
"""
import concurrent.futures
import logging
import time
from typing import List, Optional, Tuple

import grpc
import numpy as np
import tensorflow.compat.v1 as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, model_management_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

from images.serving import config as cfg
from images.serving import metrics as m
from images.serving.core import ServerCore
from images.serving.errors import ServingError, invalid
from images.serving.inference import model_spec

log = logging.getLogger("fastnn.serving")

SIGNATURE_DEF = "signature_def"
MAX_ELEMENTS = 1 << 28  # elements one request tensor may claim (about 1 GB of float32)

_TYPED_FIELDS = {
    np.dtype(np.float32): "float_val", np.dtype(np.float64): "double_val",
    np.dtype(np.int32): "int_val", np.dtype(np.int16): "int_val", np.dtype(np.int8): "int_val",
    np.dtype(np.uint8): "int_val", np.dtype(np.uint16): "int_val",
    np.dtype(np.int64): "int64_val", np.dtype(np.uint32): "uint32_val",
    np.dtype(np.uint64): "uint64_val", np.dtype(np.bool_): "bool_val",
}


def tensor_to_array(proto, name: str) -> np.ndarray:
    """A request's TensorProto as an array (INVALID_ARGUMENT when it is malformed)."""
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise invalid("input '%s' has a negative dimension: %s" % (name, dims))
    if int(np.prod(dims, dtype=np.float64)) > MAX_ELEMENTS:
        raise invalid("input '%s' claims shape %s, more than %d elements" % (name, dims,
                                                                            MAX_ELEMENTS))
    try:
        return tf.make_ndarray(proto)
    except Exception as e:  # noqa: BLE001  any malformed tensor is the request's fault
        raise invalid("input '%s' is not a valid TensorProto: %s" % (name, e))


def array_to_tensor(array, as_content: bool = False):
    """An output array as a TensorProto: typed value fields as TF Serving's AsProtoField, or
    ``tensor_content`` with ``--enable_serialization_as_tensor_content``."""
    array = np.asarray(array)
    field = _TYPED_FIELDS.get(array.dtype)
    if as_content or field is None or array.dtype == object:
        return tf.make_tensor_proto(array)
    proto = tf.make_tensor_proto(np.zeros((0,), array.dtype))
    proto.ClearField("tensor_content")
    proto.tensor_shape.Clear()
    for d in array.shape:
        proto.tensor_shape.dim.add().size = d
    getattr(proto, field).extend(array.ravel().tolist())
    return proto


def _version_of(spec) -> Tuple[Optional[int], Optional[str]]:
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, None
    if choice == "version_label":
        return None, spec.version_label
    return None, None


class _Servicer:
    def __init__(self, core: ServerCore, as_content: bool):
        self.core = core
        self.as_content = as_content

    def _call(self, context, api, model_name, fn):
        start = time.monotonic()
        try:
            result = fn()
            code = "OK"
        except ServingError as e:
            code = e.code
            self._count(api, model_name, code)
            context.abort(getattr(grpc.StatusCode, e.code), e.message)
        except Exception as e:  # noqa: BLE001  answered INTERNAL; the log has the trace
            log.exception("gRPC %s failed", api)
            self._count(api, model_name, "INTERNAL")
            context.abort(grpc.StatusCode.INTERNAL, "internal error: %s" % e)
        self._count(api, model_name, code)
        if api:
            self.core.metrics.add(m.REQUEST_LATENCY, (time.monotonic() - start) * 1e6,
                                  model_name=model_name, API=api, entrypoint="GRPC")
        return result

    def _count(self, api, model_name, code):
        if api:
            self.core.metrics.add(m.REQUEST_COUNT, model_name=model_name, status=code)

    @staticmethod
    def _deadline(context):
        remaining = context.time_remaining()
        return None if remaining is None or remaining > 1e9 else time.monotonic() + remaining


class PredictionService(_Servicer, prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService."""

    def Predict(self, request, context):
        def run():
            version, label = _version_of(request.model_spec)
            name = request.model_spec.name
            with self.core.use(name, version, label) as loaded:
                inputs = {k: tensor_to_array(v, k) for k, v in request.inputs.items()}
                outputs = self.core.inference.predict(
                    loaded, request.model_spec.signature_name, inputs,
                    list(request.output_filter), self._deadline(context))
                response = predict_pb2.PredictResponse()
                model_spec(name, request.model_spec.signature_name, loaded.version,
                           response.model_spec)
                for key, value in outputs.items():
                    response.outputs[key].CopyFrom(array_to_tensor(value, self.as_content))
                return response
        return self._call(context, "Predict", request.model_spec.name, run)

    def _examples_call(self, request, context, api, run_fn, response_type):
        """Classify or Regress: ``run_fn(loaded, signature_name, input, deadline)``'s result in
        a ``response_type`` reply naming the version that answered."""
        def run():
            version, label = _version_of(request.model_spec)
            name = request.model_spec.name
            with self.core.use(name, version, label) as loaded:
                result = run_fn(loaded, request.model_spec.signature_name, request.input,
                                self._deadline(context))
                response = response_type(result=result)
                model_spec(name, request.model_spec.signature_name, loaded.version,
                           response.model_spec)
                return response
        return self._call(context, api, request.model_spec.name, run)

    def Classify(self, request, context):
        return self._examples_call(request, context, "Classify", self.core.inference.classify,
                                   classification_pb2.ClassificationResponse)

    def Regress(self, request, context):
        return self._examples_call(request, context, "Regress", self.core.inference.regress,
                                   regression_pb2.RegressionResponse)

    def MultiInference(self, request, context):
        def run():
            if not request.tasks:
                raise invalid("MultiInferenceRequest has no tasks")
            spec = request.tasks[0].model_spec
            version, label = _version_of(spec)
            with self.core.use(spec.name, version, label) as loaded:
                return self.core.inference.multi_inference(loaded, request,
                                                           self._deadline(context))
        return self._call(context, "", "", run)

    def GetModelMetadata(self, request, context):
        def run():
            if not request.HasField("model_spec"):
                raise invalid("Missing ModelSpec")
            if not request.metadata_field:
                raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
            for field in request.metadata_field:
                if field != SIGNATURE_DEF:
                    raise invalid("Metadata field %s is not supported" % field)
            version, label = _version_of(request.model_spec)
            with self.core.use(request.model_spec.name, version, label) as loaded:
                response = get_model_metadata_pb2.GetModelMetadataResponse()
                response.model_spec.name = request.model_spec.name
                response.model_spec.version.value = loaded.version
                response.metadata[SIGNATURE_DEF].Pack(loaded.servable.signature_def_map())
                return response
        return self._call(context, "", "", run)


class ModelService(_Servicer, model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService."""

    def GetModelStatus(self, request, context):
        from images.serving.app import fill_status

        def run():
            if not request.HasField("model_spec"):
                raise invalid("Missing ModelSpec")
            version, label = _version_of(request.model_spec)
            states = self.core.status(request.model_spec.name, version, label)
            return fill_status(get_model_status_pb2.GetModelStatusResponse(), states)
        return self._call(context, "", "", run)

    def HandleReloadConfigRequest(self, request, context):
        response = model_management_pb2.ReloadConfigResponse()
        before = {n: self.core.metrics.first_value(n) for n in request.metric_names}
        code, message = "OK", ""
        try:
            if request.config.WhichOneof("config") != "model_config_list":
                raise invalid("ServerModelConfig type not supported by "
                              "HandleReloadConfigRequest. Only ModelConfigList is currently "
                              "supported")
            self.core.reload(cfg.model_specs(request.config))
        except ServingError as e:
            code, message = e.code, e.message
        except Exception as e:  # noqa: BLE001  a config that does not load is INVALID_ARGUMENT
            code, message = "INVALID_ARGUMENT", str(e)
        for name in request.metric_names:
            metric = response.metric.add()
            metric.name = name
            metric.int64_value_increase = int(self.core.metrics.first_value(name)
                                              - before[name])
        from tensorflow.core.protobuf import error_codes_pb2
        response.status.error_code = error_codes_pb2.Code.Value(code)
        response.status.error_message = message
        if code != "OK":
            context.abort(getattr(grpc.StatusCode, code), message)
        return response


def channel_arguments(text: str) -> List[Tuple[str, object]]:
    """TF Serving's ``--grpc_channel_arguments``: ``key=value,...``, ints where they parse."""
    args = []
    for item in filter(None, text.split(",")):
        if "=" not in item:
            raise cfg.ConfigError("--grpc_channel_arguments entry %r is not key=value" % item)
        key, value = item.split("=", 1)
        try:
            args.append((key, int(value)))
        except ValueError:
            args.append((key, value))
    return args


def _bind(server, address, message):
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:  # grpcio raises where older versions returned 0
        port = 0
    if not port:
        raise cfg.ConfigError(message)
    return port


def make_server(core: ServerCore, address: str = "", socket_path: str = "",
                max_workers: int = 8, max_message_bytes: int = 32 << 20,
                options: Tuple = (), as_content: bool = False) -> Tuple[grpc.Server, int]:
    """A started gRPC server; returns it and the bound TCP port (0 when only a socket).

    Args:
      core: the models.
      address: ``host:port`` to listen on ("" for none).
      socket_path: a UNIX socket path to listen on ("" for none).
      max_workers: threads answering RPCs (TF Serving's ``--grpc_max_threads``).
      max_message_bytes: the largest request accepted.
      options: more gRPC channel arguments.
      as_content: write output tensors as ``tensor_content``.
    """
    options = list(options)
    if not any(key == "grpc.so_reuseport" for key, _ in options):
        # gRPC sets SO_REUSEPORT, so a second server would bind a port already served and the
        # kernel would split clients between the two: refuse the port instead (a user can still
        # pass --grpc_channel_arguments=grpc.so_reuseport=1).
        options.append(("grpc.so_reuseport", 0))
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", max_message_bytes),
                 ("grpc.max_send_message_length", -1)] + options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(core, as_content), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(core, as_content),
                                                              server)
    port = 0
    if address:
        port = _bind(server, address, "cannot listen for gRPC on %s (is another server on that "
                                      "port? pick another --port)" % address)
    if socket_path:
        _bind(server, "unix:" + socket_path, "cannot listen for gRPC on the UNIX socket %s"
              % socket_path)
    server.start()
    return server, port
