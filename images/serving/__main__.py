"""Starts the model server: a drop-in for ``tensorflow_model_server``.

    python -m images.serving --model_name=NAME --model_base_path=DIR [--port=8500] \\
        [--rest_api_port=8501]
    python -m images.serving --model_config_file=models.config

gRPC (TF Serving's PredictionService and ModelService) listens on ``--port``, the REST API on
``--rest_api_port``, beside PLSC's ``POST /FaceClassifyService/inference`` (the model of
``--plsc_model_name``, or the only one served; see :mod:`images.serving.plsc_route`).  The
flags are tensorflow_model_server's (2.15), with the same meanings and defaults; an unknown flag
is refused by name.  SIGINT / SIGTERM stop taking connections, drop
clients still sending their request, finish the requests in flight, then exit.
"""
import logging
import os
import signal
import sys
import threading

from absl import app, flags

FLAGS = flags.FLAGS
_CPUS = os.cpu_count() or 1

# -- tensorflow_model_server's flags (tensorflow_serving/model_servers/main.cc, 2.15) ----------
flags.DEFINE_integer("port", 8500, "TCP port to listen on for gRPC API. Disabled if port set to "
                     "zero (then --grpc_socket_path is needed)", lower_bound=0, upper_bound=65535)
flags.DEFINE_string("grpc_socket_path", "", "if non-empty, also listen for gRPC on this UNIX "
                    "socket")
flags.DEFINE_integer("rest_api_port", 8501, "port of the HTTP/REST API; 0 disables it (must "
                     "differ from --port)", lower_bound=0, upper_bound=65535)
flags.DEFINE_integer("rest_api_num_threads", 0, "threads for HTTP/REST requests (0: 4 per CPU, "
                     "or 128 with batching on)", lower_bound=0)
flags.DEFINE_integer("rest_api_timeout_in_ms", 30000, "timeout of a REST call's model run; 0 "
                     "for none", lower_bound=0)
flags.DEFINE_boolean("rest_api_enable_cors_support", False, "add CORS headers to responses")
flags.DEFINE_boolean("enable_batching", False, "merge concurrent requests into batches")
flags.DEFINE_boolean("allow_version_labels_for_unavailable_models", False,
                     "allow labels that name versions not available yet")
flags.DEFINE_string("batching_parameters_file", "", "text BatchingParameters proto to use instead "
                    "of the defaults (needs --enable_batching)")
flags.DEFINE_boolean("enable_per_model_batching_parameters", False,
                     "read batching_params.pbtxt from each SavedModel directory (not supported "
                     "here: only false is accepted)")
flags.DEFINE_string("model_config_file", "", "text ModelServerConfig proto listing the models "
                    "(if used, --model_name and --model_base_path are ignored)")
flags.DEFINE_integer("model_config_file_poll_wait_seconds", 0, "seconds between re-reads of "
                     "--model_config_file; 0: read once")
flags.DEFINE_string("model_name", "default", "name of the model (ignored if "
                    "--model_config_file is set)")
flags.DEFINE_string("model_base_path", "", "path to export (ignored if --model_config_file is "
                    "set, otherwise required)")
flags.DEFINE_integer("num_load_threads", 0, "threads loading models at start-up (0: one after "
                     "the other)", lower_bound=0)
flags.DEFINE_integer("num_unload_threads", 0, "threads unloading versions (0: on the poll "
                     "thread)", lower_bound=0)
flags.DEFINE_integer("max_num_load_retries", 5, "retries of a version that failed to load",
                     lower_bound=0)
flags.DEFINE_integer("load_retry_interval_micros", 60 * 1000 * 1000,
                     "microseconds between load retries")
flags.DEFINE_integer("file_system_poll_wait_seconds", 1, "seconds between looks for new "
                     "versions; 0: look once at start-up")
flags.DEFINE_boolean("flush_filesystem_caches", True, "flush file-system caches after loads "
                     "(local files have none to flush: same behaviour either way)")
flags.DEFINE_integer("tensorflow_session_parallelism", 0, "threads of both TensorFlow pools "
                     "(0: automatic)", lower_bound=0)
flags.DEFINE_string("tensorflow_session_config_file", "", "text ConfigProto for the sessions")
flags.DEFINE_integer("tensorflow_intra_op_parallelism", 0, "threads inside one op (0: "
                     "automatic)", lower_bound=0)
flags.DEFINE_integer("tensorflow_inter_op_parallelism", 0, "ops run at once (0: automatic)",
                     lower_bound=0)
flags.DEFINE_boolean("use_alts_credentials", False, "Google ALTS credentials (not supported "
                     "here: only false is accepted)")
flags.DEFINE_string("ssl_config_file", "", "SSLConfig for a secure gRPC port (not supported here)")
flags.DEFINE_string("platform_config_file", "", "PlatformConfigMap (not supported here)")
flags.DEFINE_float("per_process_gpu_memory_fraction", 0.0, "GPU memory fraction per process")
flags.DEFINE_string("saved_model_tags", "serve", "comma-separated MetaGraph tags to load")
flags.DEFINE_string("grpc_channel_arguments", "", "gRPC server arguments, e.g. "
                    "grpc.max_connection_age_ms=2000,...")
flags.DEFINE_integer("grpc_max_threads", 0, "threads answering gRPC (0: 4 per CPU, or 128 with "
                     "batching on)", lower_bound=0)
flags.DEFINE_boolean("enable_model_warmup", True, "replay assets.extra/tf_serving_warmup_requests"
                     " (or run each signature once) before a version serves")
flags.DEFINE_integer("num_request_iterations_for_warmup", 0, "times each warm-up request runs "
                     "(0: once)", lower_bound=0)
flags.DEFINE_boolean("version", False, "print the version and exit")
flags.DEFINE_string("monitoring_config_file", "", "text MonitoringConfig: "
                    "prometheus_config { enable: true } exports metrics")
flags.DEFINE_boolean("remove_unused_fields_from_bundle_metagraph", True,
                     "keep only the signatures of a loaded MetaGraph (this server never keeps "
                     "more: same behaviour either way)")
flags.DEFINE_boolean("prefer_tflite_model", False, "TFLite models (not supported here)")
flags.DEFINE_integer("num_tflite_pools", _CPUS, "TFLite (not supported here)")
flags.DEFINE_integer("num_tflite_interpreters_per_pool", 1, "TFLite (not supported here)")
flags.DEFINE_boolean("enable_signature_method_name_check", False,
                     "refuse signatures whose method_name does not match the API called")
flags.DEFINE_boolean("xla_cpu_compilation_enabled", False, "XLA:CPU JIT for models that ask "
                     "for it (always available here: same behaviour either way)")
flags.DEFINE_boolean("enable_profiler", False, "TF profiler service on the gRPC port (not "
                     "available here: only false is accepted)")
flags.DEFINE_string("thread_pool_factory_config_file", "", "(not supported here)")
flags.DEFINE_string("mixed_precision", "", "'bfloat16': oneDNN's automatic bfloat16 rewrite")
flags.DEFINE_boolean("skip_initialize_tpu", False, "TPU only (no TPU here: same behaviour "
                     "either way)")
flags.DEFINE_boolean("enable_grpc_healthcheck_service", False,
                     "grpc.health.v1 (not supported here: only false is accepted)")

# -- this server's own --------------------------------------------------------------------------
flags.DEFINE_string("host", "0.0.0.0", "address to listen on (127.0.0.1: this machine only)")
flags.DEFINE_integer("max_request_bytes", 32 << 20, "larger REST bodies get 413; larger gRPC "
                     "messages RESOURCE_EXHAUSTED", lower_bound=1)
flags.DEFINE_integer("max_image_pixels", 25_000_000, "encoded images in requests with more "
                     "pixels (width x height x frames, read from the header) are refused; 0: no "
                     "limit", lower_bound=0)
flags.DEFINE_integer("rest_api_read_timeout_in_ms", 30000, "a REST client must send its request "
                     "line and headers, and then its body, within this time; 0: no limit",
                     lower_bound=0)
flags.DEFINE_float("graceful_shutdown_timeout_seconds", 30.0,
                   "on SIGTERM, how long requests in flight may take", lower_bound=0.0)
flags.DEFINE_boolean("access_log", False, "log one line per REST request")
flags.DEFINE_string("plsc_model_name", "", "the model PLSC's POST /FaceClassifyService/inference "
                    "runs (\"\": the only model served; with several, set this)")
flags.DEFINE_enum("log_level", "info", ["debug", "info", "warning", "error"], "server log level")

VERSION = "fastnn model server 0.1 (TensorFlow Serving 2.15 API)"

_UNSUPPORTED = {
    "enable_per_model_batching_parameters": (False, "put the batching parameters in "
                                             "--batching_parameters_file"),
    "use_alts_credentials": (False, "terminate TLS in front of the server"),
    "ssl_config_file": ("", "terminate TLS in front of the server"),
    "platform_config_file": ("", "use --enable_batching and the session flags"),
    "prefer_tflite_model": (False, "serve the SavedModel"),
    "num_tflite_pools": (_CPUS, "serve the SavedModel"),
    "num_tflite_interpreters_per_pool": (1, "serve the SavedModel"),
    "enable_profiler": (False, "profile with TensorFlow's own tools"),
    "thread_pool_factory_config_file": ("", "use --tensorflow_intra_op_parallelism and "
                                        "--tensorflow_inter_op_parallelism"),
    "enable_grpc_healthcheck_service": (False, "poll GetModelStatus or GET /v1/models/NAME"),
}


def _check_flags():
    for name, (default, instead) in _UNSUPPORTED.items():
        if getattr(FLAGS, name) != default:
            raise app.UsageError("--%s is not supported by this server; %s" % (name, instead))
    if FLAGS.mixed_precision not in ("", "bfloat16"):
        raise app.UsageError("--mixed_precision takes 'bfloat16' (or nothing), got %r"
                             % FLAGS.mixed_precision)
    if not FLAGS.port and not FLAGS.grpc_socket_path:
        raise app.UsageError("At least one of --port or --grpc_socket_path must be set.")
    if FLAGS.rest_api_port and FLAGS.rest_api_port == FLAGS.port:
        raise app.UsageError("--rest_api_port cannot be the same as --port (%d); pick another"
                             % FLAGS.port)
    if FLAGS.plsc_model_name and not FLAGS.rest_api_port:
        raise app.UsageError("--plsc_model_name picks the model of PLSC's REST route, but "
                             "--rest_api_port=0 turns REST off: set --rest_api_port")
    if not FLAGS.model_base_path and not FLAGS.model_config_file:
        raise app.UsageError("Both --model_base_path and --model_config_file are empty: give "
                             "the model's directory of numbered versions (e.g. "
                             "--model_base_path=/models/lenet) or a model config file")
    if FLAGS.batching_parameters_file and not FLAGS.enable_batching:
        raise app.UsageError("--batching_parameters_file is set without setting "
                             "--enable_batching to true.")
    if (FLAGS.tensorflow_intra_op_parallelism and FLAGS.tensorflow_inter_op_parallelism
            and FLAGS.tensorflow_session_parallelism):
        raise app.UsageError("Either configure --tensorflow_session_parallelism or "
                             "(--tensorflow_intra_op_parallelism, "
                             "--tensorflow_inter_op_parallelism) separately. You cannot "
                             "configure all.")


def _session_config(cfg):
    config = cfg.read_session_config(FLAGS.tensorflow_session_config_file)
    config.gpu_options.per_process_gpu_memory_fraction = FLAGS.per_process_gpu_memory_fraction
    if FLAGS.tensorflow_intra_op_parallelism or FLAGS.tensorflow_inter_op_parallelism:
        config.intra_op_parallelism_threads = FLAGS.tensorflow_intra_op_parallelism
        config.inter_op_parallelism_threads = FLAGS.tensorflow_inter_op_parallelism
    elif FLAGS.tensorflow_session_parallelism or not FLAGS.tensorflow_session_config_file:
        config.intra_op_parallelism_threads = FLAGS.tensorflow_session_parallelism
        config.inter_op_parallelism_threads = FLAGS.tensorflow_session_parallelism
    if FLAGS.mixed_precision == "bfloat16":
        from tensorflow.core.protobuf import rewriter_config_pb2
        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = \
            rewriter_config_pb2.RewriterConfig.ON
    return config


def _watch_config_file(core, cfg, stop, log):
    last = None
    while not stop.wait(FLAGS.model_config_file_poll_wait_seconds):
        try:
            specs = cfg.read_model_config(FLAGS.model_config_file)
            if specs != last:
                core.reload(specs)
                last = specs
        except Exception as e:  # noqa: BLE001  a bad edit keeps the models being served
            log.error("Failed to reload --model_config_file: %s", e)


def main(argv):
    if FLAGS.version:
        print(VERSION)
        return
    if len(argv) > 1:
        raise app.UsageError("unknown argument: %s (every option is a --flag=value)" % argv[1])
    _check_flags()
    from images.utils import onednn
    onednn_choice = onednn.configure()  # before TensorFlow is imported: it reads it once
    # Imported here so that --help and flag errors answer without loading TensorFlow.
    import tensorflow.compat.v1 as tf
    import uvicorn

    import images  # noqa: F401  (compat shim)
    from images.serving import config as cfg
    from images.serving import plsc_route
    from images.serving.app import create_app
    from images.serving.core import CoreOptions, ServerCore
    from images.serving.errors import ServingError
    from images.serving.grpc_server import channel_arguments, make_server
    from images.serving.http_protocol import TimedH11Protocol
    from images.serving.manager import BatchingOptions
    from images.serving.servable import ModelLoadError

    log = logging.getLogger("fastnn.serving")
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(FLAGS.log_level.upper())
    log.info("%s", onednn_choice)
    tf.get_logger().setLevel(logging.WARNING)  # one line per restored checkpoint is noise here
    try:
        if FLAGS.model_config_file:
            specs = cfg.read_model_config(FLAGS.model_config_file)
        else:
            specs = cfg.model_specs(_single_model_config())
        params = cfg.read_batching_parameters(FLAGS.batching_parameters_file)
        metrics_path = cfg.read_monitoring_config(FLAGS.monitoring_config_file)
        options = CoreOptions(
            tags=tuple(t for t in FLAGS.saved_model_tags.split(",") if t) or ("serve",),
            batching=BatchingOptions.from_parameters(FLAGS.enable_batching, params),
            poll_seconds=max(0, FLAGS.file_system_poll_wait_seconds),
            session_config=_session_config(cfg), warmup=FLAGS.enable_model_warmup,
            warmup_iterations=FLAGS.num_request_iterations_for_warmup or 1,
            max_num_load_retries=FLAGS.max_num_load_retries,
            load_retry_interval_s=max(0, FLAGS.load_retry_interval_micros) / 1e6,
            allow_unavailable_labels=FLAGS.allow_version_labels_for_unavailable_models,
            max_image_pixels=FLAGS.max_image_pixels,
            method_name_check=FLAGS.enable_signature_method_name_check,
            num_load_threads=FLAGS.num_load_threads,
            num_unload_threads=FLAGS.num_unload_threads)
        core = ServerCore(options)
        core.start(specs)
        if FLAGS.plsc_model_name and FLAGS.plsc_model_name not in core.models:
            core.stop(1.0)
            raise cfg.ConfigError("--plsc_model_name=%s names no served model (served: %s)"
                                  % (FLAGS.plsc_model_name, ", ".join(sorted(core.models))))
    except (cfg.ConfigError, ModelLoadError, ServingError) as e:
        sys.exit("Failed to start server. Error: %s" % e)
    batching = core.scheduler is not None
    stop = threading.Event()
    if FLAGS.model_config_file and FLAGS.model_config_file_poll_wait_seconds > 0:
        threading.Thread(target=_watch_config_file, args=(core, cfg, stop, log),
                         daemon=True).start()
    try:
        grpc_server, grpc_port = make_server(
            core, "%s:%d" % (FLAGS.host, FLAGS.port) if FLAGS.port else "",
            FLAGS.grpc_socket_path, FLAGS.grpc_max_threads or (128 if batching else 4 * _CPUS),
            FLAGS.max_request_bytes, tuple(channel_arguments(FLAGS.grpc_channel_arguments)))
    except cfg.ConfigError as e:
        core.stop(1.0)
        sys.exit("Failed to start server. Error: %s" % e)
    if grpc_port:
        log.info("Running gRPC ModelServer at %s:%d ...", FLAGS.host, grpc_port)
    grace = FLAGS.graceful_shutdown_timeout_seconds

    def stop_grpc():
        grpc_server.stop(grace).wait(grace + 1)

    if not FLAGS.rest_api_port:
        def handle(signum, frame):
            stop.set()
        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        stop.wait()
        stop_grpc()
        core.stop(grace)
        return
    plsc = plsc_route.router(core, FLAGS.max_request_bytes, FLAGS.plsc_model_name,
                             FLAGS.rest_api_timeout_in_ms)
    application = create_app(core, FLAGS.max_request_bytes, FLAGS.rest_api_timeout_in_ms,
                             metrics_path, FLAGS.rest_api_enable_cors_support,
                             FLAGS.rest_api_num_threads, extra_routers=[plsc],
                             on_shutdown=[stop.set, stop_grpc])
    log.info("Exporting HTTP/REST API at:%s:%d ...", FLAGS.host, FLAGS.rest_api_port)
    config = uvicorn.Config(
        application, host=FLAGS.host, port=FLAGS.rest_api_port, log_level=FLAGS.log_level,
        access_log=FLAGS.access_log, lifespan="on", timeout_graceful_shutdown=grace,
        http=TimedH11Protocol.with_timeout(FLAGS.rest_api_read_timeout_in_ms / 1000.0))
    uvicorn.Server(config).run()


def _single_model_config():
    from tensorflow_serving.config import model_server_config_pb2
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = FLAGS.model_name
    model.base_path = os.path.abspath(FLAGS.model_base_path)
    model.model_platform = "tensorflow"
    return config


if __name__ == "__main__":
    app.run(main)
