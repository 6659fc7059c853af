"""Replays a SavedModel's warm-up requests (``assets.extra/tf_serving_warmup_requests``).

TF Serving's model warm-up: the file is a TFRecord of ``PredictionLog`` protos (Predict, Classify,
Regress or MultiInference requests); each is run ``iterations`` times before the version serves,
so that lazy initialisation (graph optimisation, kernel primitives) happens at load time instead of
on the first users' requests.
"""
import tensorflow.compat.v1 as tf
from tensorflow_serving.apis import prediction_log_pb2

from images.serving import metrics as m

MAX_WARMUP_RECORDS = 1000  # TF Serving's limit on warm-up records


def replay(servable, path, iterations=1) -> int:
    """Runs every request in ``path`` on ``servable``; returns how many there were.

    Raises:
      ValueError: more records than TF Serving allows, or a record of an unsupported kind.
      ServingError: a request failed.
    """
    from images.serving.inference import Inference
    from images.serving.manager import BatchingOptions, LoadedVersion
    loaded = LoadedVersion(servable, "warmup", BatchingOptions(), None)
    inference = Inference(m.server_metrics())
    count = 0
    for record in tf.io.tf_record_iterator(path):
        count += 1
        if count > MAX_WARMUP_RECORDS:
            raise ValueError("more than %d warm-up records in %s" % (MAX_WARMUP_RECORDS, path))
        log = prediction_log_pb2.PredictionLog.FromString(record)
        kind = log.WhichOneof("log_type")
        for _ in range(iterations):
            if kind == "predict_log":
                request = log.predict_log.request
                inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
                inference.predict(loaded, request.model_spec.signature_name, inputs,
                                  list(request.output_filter))
            elif kind == "classify_log":
                request = log.classify_log.request
                inference.classify(loaded, request.model_spec.signature_name, request.input)
            elif kind == "regress_log":
                request = log.regress_log.request
                inference.regress(loaded, request.model_spec.signature_name, request.input)
            elif kind == "multi_inference_log":
                inference.multi_inference(loaded, log.multi_inference_log.request)
            else:
                raise ValueError("warm-up record %d is a %s, which cannot be replayed"
                                 % (count, kind))
    return count
