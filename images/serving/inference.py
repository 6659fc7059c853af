"""Predict, Classify, Regress and MultiInference on a loaded version: one path for REST and gRPC.

The checks and messages are TF Serving's (servables/tensorflow/predict_util.cc, classifier.cc,
regressor.cc, multi_inference.cc); results are TF Serving's own protos from the
``tensorflow-serving-api`` package, which the REST API writes as JSON and the gRPC API returns.

Beyond TF Serving, ``Classify`` also ranks the outputs of the image models this project exports
(``top_k_classes`` with ``probabilities``, or ``probabilities`` alone), whose signatures take named
inputs rather than serialized ``tf.Example``s: TF Serving refuses those signatures.
"""
import time
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow.compat.v1 as tf
from tensorflow_serving.apis import (classification_pb2, inference_pb2, model_pb2,
                                     regression_pb2)

from images.serving import codec, examples
from images.serving import metrics as m
from images.serving.errors import ServingError, from_tf_error, invalid
from images.serving.image_limits import check_images
from images.serving.signatures import DEFAULT_SIGNATURE, Signature

CLASSIFY_INPUTS, CLASSES, SCORES = "inputs", "classes", "scores"
REGRESS_INPUTS, REGRESS_OUTPUTS = "inputs", "outputs"
EMBEDDINGS = "embeddings"  # the output of this project's embedding (feature) exports
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
PREDICT_METHOD = "tensorflow/serving/predict"


def model_spec(name: str, signature_name: Optional[str], version: int, out=None):
    """TF Serving's MakeModelSpec: the spec a response echoes."""
    spec = out if out is not None else model_pb2.ModelSpec()
    spec.Clear()
    spec.name = name
    if signature_name is not None:
        spec.signature_name = signature_name or DEFAULT_SIGNATURE
    spec.version.value = version
    return spec


class Inference:
    """Runs requests on loaded versions.

    Args:
      metrics: the server's :class:`~images.serving.metrics.Metrics`.
      max_image_pixels: the limit on encoded images in requests (0: none).
    """

    def __init__(self, metrics: m.Metrics, max_image_pixels: int = 0,
                 method_name_check: bool = False):
        self.metrics = metrics
        self.max_image_pixels = max_image_pixels
        self.method_name_check = method_name_check

    def _check_method(self, signature, allowed, what):
        if self.method_name_check and signature.method_name not in allowed:
            raise invalid("Expected %s signature method_name to be %s. Was: %s (the server runs "
                          "with --enable_signature_method_name_check)"
                          % (what, " or ".join(allowed), signature.method_name))

    # -- running ------------------------------------------------------------------------------

    def _run(self, loaded, signature_name, inputs, api, output_keys=None,
             deadline: Optional[float] = None):
        for array in inputs.values():
            if array.dtype == object:
                check_images(array.ravel(), self.max_image_pixels)
        timeout_ms = None
        if deadline is not None:
            timeout_ms = int((deadline - time.monotonic()) * 1000)
            if timeout_ms <= 0:
                raise ServingError("DEADLINE_EXCEEDED", "the request's deadline passed before "
                                                        "the model ran")
        start = time.monotonic()
        what = "model '%s' version %d signature '%s'" % (loaded.model_name, loaded.version,
                                                         signature_name)
        try:
            outputs = loaded.run(signature_name, inputs, output_keys, timeout_ms, deadline,
                                 codec.common_batch_size(inputs))
        except ServingError:
            raise
        except tf.errors.OpError as e:
            raise from_tf_error(e, what)
        except (ValueError, TypeError) as e:
            # Arrays the session cannot feed (an object array of non-bytes, a dtype mismatch).
            raise invalid("%s cannot take the input: %s" % (what, e))
        self.metrics.add(m.RUNTIME_LATENCY, (time.monotonic() - start) * 1e6,
                         model_name=loaded.model_name, API=api, runtime="TF1")
        return outputs

    @staticmethod
    def signature(loaded, name: str, code="FAILED_PRECONDITION") -> Signature:
        signature = loaded.servable.signatures.get(name or DEFAULT_SIGNATURE)
        if signature is None:
            raise ServingError(code, "Serving signature key \"%s\" not found."
                               % (name or DEFAULT_SIGNATURE))
        return signature

    # -- predict ------------------------------------------------------------------------------

    def predict(self, loaded, signature_name: str, inputs: Dict[str, np.ndarray],
                output_filter: Sequence[str] = (), deadline: Optional[float] = None):
        """TF Serving's RunPredict on arrays; returns ``{output alias: array}``.

        Raises:
          ServingError: unknown signature, inputs that do not match it, a bad output filter, a
            failed run.
        """
        signature = self.signature(loaded, signature_name)
        self._check_method(signature, (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD),
                           "prediction")
        sig_inputs = set(signature.inputs)
        given = set(inputs)
        if len(given) > len(sig_inputs) or len(given) < len(sig_inputs) or given != sig_inputs:
            extra, missing = sorted(given - sig_inputs), sorted(sig_inputs - given)
            raise invalid("input size does not match signature: %d!=%d len({%s}) != len({%s}). "
                          "Sent extra: {%s}. Missing but required: {%s}."
                          % (len(given), len(sig_inputs), ",".join(sorted(given)),
                             ",".join(sorted(sig_inputs)), ",".join(extra), ",".join(missing)))
        output_keys = None
        if output_filter:
            seen = set()
            for alias in output_filter:
                if alias not in signature.outputs:
                    raise invalid("output tensor alias not found in signature: %s Outputs "
                                  "expected to be in the set {%s}."
                                  % (alias, ",".join(sorted(signature.outputs))))
                if alias in seen:
                    raise invalid("duplicate output tensor alias: %s" % alias)
                seen.add(alias)
            output_keys = list(output_filter)
        return self._run(loaded, signature.name, inputs, "Predict", output_keys, deadline)

    # -- classify and regress -----------------------------------------------------------------

    def _examples_signature(self, loaded, signature_name, method, what) -> Signature:
        """The signature a Classify or Regress request names (TF Serving's messages)."""
        signature = loaded.servable.signatures.get(signature_name or DEFAULT_SIGNATURE)
        if signature is None:
            raise invalid("No signature was found with the name: %s"
                          % (signature_name or DEFAULT_SIGNATURE))
        self._check_method(signature, (method,), what)
        return signature

    def _examples_tensor(self, input_proto):
        serialized = examples.serialized_examples(input_proto)
        check_images(examples.bytes_values(input_proto), self.max_image_pixels,
                     "a tf.Example feature")
        array = np.empty(len(serialized), dtype=object)
        array[:] = serialized
        return array

    def _record_examples(self, loaded, count):
        self.metrics.add(m.EXAMPLE_COUNTS, count, model=loaded.model_name)
        self.metrics.add(m.EXAMPLE_COUNT_TOTAL, count, model=loaded.model_name)

    def classify(self, loaded, signature_name: str, input_proto,
                 deadline: Optional[float] = None):
        """TF Serving's RunClassify; returns a ``ClassificationResult``.

        Raises:
          ServingError: no such signature, not a classification signature, a failed run.
        """
        signature = self._examples_signature(loaded, signature_name, CLASSIFY_METHOD,
                                             "classification")
        problem = classification_problem(signature)
        if problem is not None:
            ranked = image_model_outputs(signature)
            if ranked is None:
                if EMBEDDINGS in signature.outputs:
                    raise invalid("model '%s' is an embedding model: it returns embeddings, not "
                                  "classes; call :predict (or FaceService) and compare the "
                                  "embeddings (%s)" % (loaded.model_name, problem))
                raise invalid(problem)
            return self._classify_image_model(loaded, signature, ranked, input_proto, deadline)
        tensor = self._examples_tensor(input_proto)
        count = len(tensor)
        keys = [k for k in (CLASSES, SCORES) if k in signature.outputs]
        outputs = self._run(loaded, signature.name, {CLASSIFY_INPUTS: tensor}, "Classify", keys,
                            deadline)
        self._record_examples(loaded, count)
        return classification_result(outputs.get(CLASSES), outputs.get(SCORES), count)

    def _classify_image_model(self, loaded, signature, ranked, input_proto, deadline):
        instances = examples.examples_as_instances(input_proto)
        for row in instances:
            check_images([v for v in row.values() if isinstance(v, bytes)],
                         self.max_image_pixels, "a tf.Example feature")
        inputs = codec._instances_to_arrays(instances, signature)
        outputs = self._run(loaded, signature.name, inputs, "Classify", None, deadline)
        self._record_examples(loaded, len(instances))
        return rank_image_model(outputs, ranked, len(instances))

    def regress(self, loaded, signature_name: str, input_proto,
                deadline: Optional[float] = None):
        """TF Serving's RunRegress; returns a ``RegressionResult``."""
        signature = self._examples_signature(loaded, signature_name, REGRESS_METHOD,
                                             "regression")
        problem = regression_problem(signature)
        if problem is not None:
            raise invalid(problem)
        tensor = self._examples_tensor(input_proto)
        outputs = self._run(loaded, signature.name, {REGRESS_INPUTS: tensor}, "Regress",
                            [REGRESS_OUTPUTS], deadline)
        self._record_examples(loaded, len(tensor))
        return regression_result(outputs[REGRESS_OUTPUTS], len(tensor))

    def multi_inference(self, loaded, request, deadline: Optional[float] = None):
        """TF Serving's RunMultiInference; returns a ``MultiInferenceResponse``."""
        names, model_name = set(), None
        for task in request.tasks:
            if not task.model_spec.name:
                raise invalid("Found ModelSpec with an empty model name.")
            if model_name is None:
                model_name = task.model_spec.name
            elif task.model_spec.name != model_name:
                raise invalid("All ModelSpecs in a MultiInferenceRequest must access the same "
                              "model name.")
            name = task.model_spec.signature_name or DEFAULT_SIGNATURE
            if name in names:
                raise invalid("Duplicate evaluation of signature: %s" % name)
            names.add(name)
            signature = loaded.servable.signatures.get(name)
            if signature is None:
                raise invalid("Requested signature not found in model graph: %s" % name)
            if task.method_name == CLASSIFY_METHOD:
                problem = classification_problem(signature)
            elif task.method_name == REGRESS_METHOD:
                problem = regression_problem(signature)
            else:
                raise ServingError("UNIMPLEMENTED", "Unsupported signature method_name: %s"
                                   % task.method_name)
            if problem is not None:
                raise invalid(problem)
        response = inference_pb2.MultiInferenceResponse()
        tensor = self._examples_tensor(request.input)
        for task in request.tasks:
            name = task.model_spec.signature_name or DEFAULT_SIGNATURE
            signature = loaded.servable.signatures[name]
            result = response.results.add()
            if task.method_name == CLASSIFY_METHOD:
                keys = [k for k in (CLASSES, SCORES) if k in signature.outputs]
                out = self._run(loaded, name, {CLASSIFY_INPUTS: tensor}, "MultiInference", keys,
                                deadline)
                result.classification_result.CopyFrom(
                    classification_result(out.get(CLASSES), out.get(SCORES), len(tensor)))
            else:
                out = self._run(loaded, name, {REGRESS_INPUTS: tensor}, "MultiInference",
                                [REGRESS_OUTPUTS], deadline)
                result.regression_result.CopyFrom(
                    regression_result(out[REGRESS_OUTPUTS], len(tensor)))
            model_spec(task.model_spec.name, task.model_spec.signature_name, loaded.version,
                       result.model_spec)
        self._record_examples(loaded, len(tensor))
        return response


# ---------------------------------------------------------------------------------------------
# TF Serving's signature checks and result conversions

def classification_problem(signature: Signature) -> Optional[str]:
    """TF Serving's PreProcessClassification: why ``signature`` cannot classify, or None."""
    if len(signature.inputs) != 1:
        return "Expected one input Tensor."
    if len(signature.outputs) not in (1, 2):
        return "Expected one or two output Tensors, found %d" % len(signature.outputs)
    if CLASSIFY_INPUTS not in signature.inputs:
        return "No classification inputs found in SignatureDef '%s' (it needs an input named " \
               "\"inputs\")" % signature.name
    if CLASSES not in signature.outputs and SCORES not in signature.outputs:
        return ("Expected classification signature outputs to contain at least one of "
                "\"classes\" or \"scores\". Signature '%s' has: %s"
                % (signature.name, ", ".join(sorted(signature.outputs))))
    return None


def regression_problem(signature: Signature) -> Optional[str]:
    """TF Serving's PreProcessRegression: why ``signature`` cannot regress, or None."""
    if len(signature.inputs) != 1:
        return "Expected one input Tensor."
    if len(signature.outputs) != 1:
        return "Expected one output Tensor."
    if REGRESS_INPUTS not in signature.inputs:
        return "No regression inputs found in SignatureDef '%s' (it needs an input named " \
               "\"inputs\")" % signature.name
    if REGRESS_OUTPUTS not in signature.outputs:
        return "No regression outputs found in SignatureDef '%s' (it needs an output named " \
               "\"outputs\")" % signature.name
    return None


def classification_result(classes, scores, count):
    """TF Serving's PostProcessClassificationResult."""
    for name, tensor, want in ((CLASSES, classes, "DT_STRING"), (SCORES, scores, "DT_FLOAT")):
        if tensor is None:
            continue
        if np.ndim(tensor) != 2:
            raise invalid("Expected Tensor shape: [batch_size num_classes] but got %s"
                          % list(np.shape(tensor)))
        ok = (tensor.dtype == object or tensor.dtype.kind == "S") if want == "DT_STRING" \
            else tensor.dtype == np.float32
        if not ok:
            raise invalid("Expected %s Tensor of %s. Got: %s" % (name, want, tensor.dtype))
        if tensor.shape[0] != count:
            raise invalid("Expected %s output batch size of %d. Got: %d"
                          % (name, count, tensor.shape[0]))
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid("Tensors class and score should match in dim_size(1). Got %d vs. %d"
                      % (classes.shape[1], scores.shape[1]))
    num_classes = (classes if classes is not None else scores).shape[1]
    result = classification_pb2.ClassificationResult()
    for i in range(count):
        row = result.classifications.add()
        for c in range(num_classes):
            cls = row.classes.add()
            if classes is not None:
                cls.label = bytes(classes[i, c]).decode("utf-8", "replace")
            if scores is not None:
                cls.score = float(scores[i, c])
    return result


def regression_result(output, count):
    """TF Serving's PostProcessRegressionResult."""
    shape = np.shape(output)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise invalid("Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
                      "but got %s" % list(shape))
    if shape[0] != count:
        raise invalid("Input batch size did not match output batch size: %d vs. %d"
                      % (count, shape[0]))
    if output.dtype != np.float32:
        raise invalid("Expected output Tensor of DT_FLOAT.  Got: %s" % output.dtype)
    result = regression_pb2.RegressionResult()
    for value in np.ravel(output):
        result.regressions.add().value = float(value)
    return result


def image_model_outputs(signature: Signature):
    """The outputs an exported image model is ranked by, or None (see the module docstring)."""
    outs = signature.outputs

    def rank(key, n):
        return key in outs and outs[key].shape is not None and len(outs[key].shape) == n

    if rank("top_k_classes", 2) and rank("probabilities", 2):
        return ("top_k_classes", "probabilities")
    if rank("probabilities", 2):
        return ("probabilities",)
    return None


def rank_image_model(outputs, keys, count):
    """A ClassificationResult from an exported image model's outputs (class ids as labels)."""
    result = classification_pb2.ClassificationResult()
    if keys == ("top_k_classes", "probabilities"):
        top_k, probs = outputs["top_k_classes"], outputs["probabilities"]
        # The exporter's probabilities are the top-k ones, aligned with top_k_classes; a model
        # whose probabilities cover every class is indexed by class id instead.
        aligned = np.shape(probs)[1] == np.shape(top_k)[1]
        for top, row in zip(top_k, probs):
            classes = result.classifications.add()
            for j, c in enumerate(top):
                item = classes.classes.add()
                item.label = str(int(c))
                item.score = float(row[j] if aligned else row[int(c)])
    else:
        for probs in outputs["probabilities"]:
            classes = result.classifications.add()
            for c in np.argsort(-np.asarray(probs), kind="stable"):
                item = classes.classes.add()
                item.label = str(int(c))
                item.score = float(probs[c])
    if len(result.classifications) != count:
        raise invalid("the model returned %d results for %d examples"
                      % (len(result.classifications), count))
    return result
