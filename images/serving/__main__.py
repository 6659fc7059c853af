"""Starts the model server.

    python -m images.serving --model_base_path=DIR --model_name=NAME --port=8501

``DIR`` holds numbered SavedModel directories (``DIR/1/saved_model.pb``, ...); the newest is served
and a newer one is picked up while running.  Flag names follow TensorFlow Serving's where it has
one.  SIGINT / SIGTERM stop taking connections, finish the requests in flight, then exit.
"""
import logging
import os
import sys

from absl import app, flags

FLAGS = flags.FLAGS

flags.DEFINE_string("model_name", "model", "name clients use in /v1/models/NAME")
flags.DEFINE_string("model_base_path", None,
                    "directory of numbered SavedModel version directories (DIR/1/saved_model.pb)")
flags.DEFINE_string("host", "0.0.0.0", "address to listen on (127.0.0.1: this machine only)")
flags.DEFINE_integer("port", 8501, "REST port", lower_bound=0, upper_bound=65535)
flags.DEFINE_list("saved_model_tags", ["serve"], "MetaGraph tags to load, comma separated")
flags.DEFINE_boolean("enable_batching", False,
                     "merge concurrent requests into one model call (off, as in TF Serving: "
                     "each request runs alone); see docs/serving.md for when it pays")
flags.DEFINE_integer("max_batch_size", 32, "most examples in one merged model call",
                     lower_bound=1)
flags.DEFINE_integer("batch_timeout_micros", 0,
                     "how long the first request of a batch waits for others; 0 merges only "
                     "the requests that arrived while the model was busy", lower_bound=0)
flags.DEFINE_integer("max_enqueued_requests", 1024,
                     "requests that may wait for the model per signature; more get 503",
                     lower_bound=1)
flags.DEFINE_integer("num_batch_threads", 0,
                     "model calls running at once per signature (0: one per CPU core)",
                     lower_bound=0)
flags.DEFINE_integer("max_request_bytes", 32 << 20, "larger request bodies get 413",
                     lower_bound=1)
flags.DEFINE_float("file_system_poll_wait_seconds", 1.0,
                   "seconds between looks for a new version directory; 0 disables reloading",
                   lower_bound=0.0)
flags.DEFINE_boolean("enable_model_warmup", True,
                     "run every signature once before a version starts serving")
flags.DEFINE_integer("tensorflow_intra_op_parallelism", 0,
                     "threads inside one op (0: TensorFlow's choice)", lower_bound=0)
flags.DEFINE_integer("tensorflow_inter_op_parallelism", 0,
                     "ops run at once (0: TensorFlow's choice)", lower_bound=0)
flags.DEFINE_float("graceful_shutdown_timeout_seconds", 30.0,
                   "on SIGTERM, how long requests in flight may take to finish", lower_bound=0.0)
flags.DEFINE_boolean("access_log", False, "log one line per request")
flags.DEFINE_enum("log_level", "info", ["debug", "info", "warning", "error"], "server log level")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("unexpected arguments %s: every option is a --flag" % argv[1:])
    if not FLAGS.model_base_path:
        raise app.UsageError("--model_base_path is required: the directory of numbered "
                             "SavedModel versions (e.g. --model_base_path=/models/lenet)")
    from images.utils import onednn
    onednn_choice = onednn.configure()  # before TensorFlow is imported: it reads it once
    # Imported here so that --help answers without loading TensorFlow.
    import tensorflow.compat.v1 as tf
    import uvicorn

    import images  # noqa: F401  (compat shim)
    from images.serving.app import create_app
    from images.serving.manager import BatchingOptions, ModelManager
    from images.serving.servable import ModelLoadError

    logging.getLogger("fastnn.serving").setLevel(FLAGS.log_level.upper())
    logging.getLogger("fastnn.serving").info("%s", onednn_choice)
    tf.get_logger().setLevel(logging.WARNING)  # one line per restored checkpoint is noise here
    batching = BatchingOptions(
        enabled=FLAGS.enable_batching, max_batch_size=FLAGS.max_batch_size,
        batch_timeout_s=FLAGS.batch_timeout_micros / 1e6,
        max_enqueued=FLAGS.max_enqueued_requests,
        num_threads=FLAGS.num_batch_threads or os.cpu_count() or 1)
    session_config = tf.ConfigProto(
        intra_op_parallelism_threads=FLAGS.tensorflow_intra_op_parallelism,
        inter_op_parallelism_threads=FLAGS.tensorflow_inter_op_parallelism)
    manager = ModelManager(FLAGS.model_name, FLAGS.model_base_path, FLAGS.saved_model_tags,
                           batching, FLAGS.file_system_poll_wait_seconds, session_config,
                           warmup=FLAGS.enable_model_warmup)
    try:
        manager.start()
    except ModelLoadError as e:
        sys.exit("error: %s" % e)
    logging.getLogger("fastnn.serving").info(
        "model '%s' version %s from %s; batching %s", FLAGS.model_name, manager.current_version,
        manager.base_path, batching if FLAGS.enable_batching else "off")
    config = uvicorn.Config(create_app(manager, FLAGS.max_request_bytes), host=FLAGS.host,
                            port=FLAGS.port, log_level=FLAGS.log_level,
                            access_log=FLAGS.access_log, lifespan="on",
                            timeout_graceful_shutdown=FLAGS.graceful_shutdown_timeout_seconds)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    app.run(main)
