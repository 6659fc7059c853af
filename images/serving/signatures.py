"""What a served signature takes and returns, independent of TensorFlow's protos.

The codec (:mod:`images.serving.codec`) checks requests against these specs, so it can be tested
without loading a model.
"""
import dataclasses
from typing import Mapping, Optional, Tuple

import numpy as np

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One named input or output of a signature.

    Attributes:
      key: the name clients use (the signature's map key, e.g. ``image_bytes``).
      tensor_name: the graph tensor behind it (``serving_default_image_bytes:0``).
      dtype: numpy dtype of its values; ``object`` (Python ``bytes``) for ``DT_STRING``.
      dtype_name: TensorFlow's enum name, e.g. ``DT_FLOAT``, for messages.
      shape: dimensions with -1 for "any size", or None when even the rank is unknown.
    """
    key: str
    tensor_name: str
    dtype: np.dtype
    dtype_name: str
    shape: Optional[Tuple[int, ...]]

    @property
    def is_string(self):
        return self.dtype == np.dtype(object)

    @property
    def tf_type_name(self):
        """TensorFlow's DataTypeString, e.g. ``float`` for ``DT_FLOAT`` (TF Serving's messages)."""
        return self.dtype_name[3:].lower() if self.dtype_name.startswith("DT_") else self.dtype_name

    @property
    def has_batch_dim(self):
        """True when the first dimension may take any size (requests can be stacked on it)."""
        return self.shape is not None and len(self.shape) >= 1 and self.shape[0] == -1

    def describe(self):
        """``DT_FLOAT [-1, 224, 224, 3]``: the dtype and shape as a message shows them."""
        shape = "unknown rank" if self.shape is None else "[%s]" % ", ".join(map(str, self.shape))
        return "%s %s" % (self.dtype_name, shape)


@dataclasses.dataclass(frozen=True)
class Signature:
    """A signature of a loaded SavedModel: named inputs and outputs and the method name."""
    name: str
    method_name: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]

    @property
    def batchable(self):
        """True when requests can be merged: every input and output has a free batch dimension."""
        specs = list(self.inputs.values()) + list(self.outputs.values())
        return bool(self.inputs) and all(s.has_batch_dim for s in specs)

    def describe_inputs(self):
        return ", ".join("%s (%s)" % (k, s.describe()) for k, s in sorted(self.inputs.items()))
