"""Declarations of TF Serving's config messages that the ``tensorflow-serving-api`` wheel lacks.

``BatchingParameters`` (tensorflow_serving/servables/tensorflow/session_bundle_config.proto) and
``MonitoringConfig`` / ``PrometheusConfig`` (tensorflow_serving/config/monitoring_config.proto)
are declared here with TF Serving's package, field names, numbers and types, in a private
descriptor pool, so that the text files written for ``tensorflow_model_server`` parse the same way.
"""
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_F = descriptor_pb2.FieldDescriptorProto


def _field(message, name, number, type_, label=_F.LABEL_OPTIONAL, type_name=None):
    field = message.field.add(name=name, number=number, type=type_, label=label)
    if type_name:
        field.type_name = type_name


def _build():
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name="fastnn/tensorflow_serving_configs.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"])

    batching = file.message_type.add(name="BatchingParameters")
    for name, number in (("max_batch_size", 1), ("batch_timeout_micros", 2),
                         ("max_enqueued_batches", 3), ("num_batch_threads", 4),
                         ("max_execution_batch_size", 9)):
        _field(batching, name, number, _F.TYPE_MESSAGE, type_name=".google.protobuf.Int64Value")
    _field(batching, "thread_pool_name", 5, _F.TYPE_MESSAGE,
           type_name=".google.protobuf.StringValue")
    _field(batching, "enable_large_batch_splitting", 8, _F.TYPE_MESSAGE,
           type_name=".google.protobuf.BoolValue")
    _field(batching, "allowed_batch_sizes", 6, _F.TYPE_INT64, label=_F.LABEL_REPEATED)
    _field(batching, "pad_variable_length_inputs", 7, _F.TYPE_BOOL)

    prometheus = file.message_type.add(name="PrometheusConfig")
    _field(prometheus, "enable", 1, _F.TYPE_BOOL)
    _field(prometheus, "path", 2, _F.TYPE_STRING)
    monitoring = file.message_type.add(name="MonitoringConfig")
    _field(monitoring, "prometheus_config", 1, _F.TYPE_MESSAGE,
           type_name=".tensorflow.serving.PrometheusConfig")

    pool.Add(file)
    return {name: message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving." + name))
        for name in ("BatchingParameters", "PrometheusConfig", "MonitoringConfig")}


_CLASSES = _build()
BatchingParameters = _CLASSES["BatchingParameters"]
PrometheusConfig = _CLASSES["PrometheusConfig"]
MonitoringConfig = _CLASSES["MonitoringConfig"]
