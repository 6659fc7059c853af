"""Mixed precision: float32 master weights read in float16/bfloat16, and loss scaling.

Two ways to run the network in a 16-bit type, both keeping the variables (master weights) float32:

* the custom getter (:func:`compute_dtype_scope`): the graph is built in the compute dtype and every
  trainable float32 variable is cast on read.  Batch-norm parameters and moving statistics stay
  float32 (tf-slim's fused batch norm asks for float32 parameters when its input is 16-bit), and
  :func:`images.training.build_network` casts the logits back to float32 for the loss.
* oneDNN's graph rewrite (``auto_mixed_precision_onednn_bfloat16``, bfloat16 only): the graph is
  built in float32 and Grappler converts the ops on its allow list (convolutions, matmuls, batch
  norm with float32 statistics, activations and their gradients) to bfloat16 with casts at the
  edges; softmax cross-entropy and the update stay float32.  It needs TensorFlow's oneDNN ops,
  which TensorFlow switches on by itself only on CPUs with AVX512-VNNI/BF16 or AMX
  (``TF_ENABLE_ONEDNN_OPTS=1`` forces them).

:func:`resolve_policy` picks the dtype and the way from the flags and the machine; see
docs/distributed.md for the defaults and measured speeds.

Not every op has a kernel for every type (``LRN`` and its gradient have float32 and float16 CPU
kernels only, not bfloat16).  :func:`float32_fallback` builds such ops in float32 between casts,
for any op and wherever it occurs: :func:`compute_dtype_scope` and the gradient computation of
:class:`GradientPolicyOptimizer` turn it on.

Loss scaling multiplies the loss before differentiation and divides the gradients right after, so
everything downstream (the Horovod allreduce average, clipping, the update) sees true gradients.
``dynamic`` scaling skips a step whose gradients are not finite (weights and optimizer slots keep
their values), halves the scale, and doubles it after ``growth_steps`` clean steps.
"""
import collections
import contextlib
import dataclasses
import functools
import logging
import threading
from typing import Optional

import tensorflow.compat.v1 as tf
from tensorflow.python.framework import kernels as kernels_lib
from tensorflow.python.framework import op_def_library, op_def_registry

from images.utils.onednn import cpu_flags

log = logging.getLogger("fastnn")

COMPUTE_DTYPES = {"float32": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}

# Dynamic scaling never grows past this: float16 gradients overflow long before, and an unbounded
# scale would reach float32 infinity, after which every step would be skipped.
MAX_DYNAMIC_SCALE = 2.0 ** 24

_NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def _master_weight_getter(compute_dtype):
    # TF passes the next getter as ``getter=`` when this is the only custom getter in effect
    # and positionally when it wraps another: the parameter keeps that name for both.
    def master_getter(getter, name, *args, **kwargs):
        requested = kwargs.get("dtype")
        trainable = kwargs.get("trainable", True)
        if requested is not None and requested.base_dtype == compute_dtype and trainable:
            kwargs["dtype"] = tf.float32
            var = getter(name, *args, **kwargs)
            return tf.cast(var, compute_dtype, name=name.split("/")[-1] + "_cast")
        return getter(name, *args, **kwargs)
    return master_getter


@contextlib.contextmanager
def compute_dtype_scope(compute_dtype):
    """Variables created inside are float32 and read as ``compute_dtype`` (a no-op for float32).

    Ops created inside that have no kernel for their 16-bit type run in float32 between casts
    (:func:`float32_fallback`).
    """
    if compute_dtype == tf.float32:
        yield
        return
    with tf.variable_scope(tf.get_variable_scope(),
                           custom_getter=_master_weight_getter(compute_dtype)), \
            float32_fallback():
        yield


# --------------------------------------------------------------------------- kernel fallback
LOW_PRECISION_DTYPES = (tf.float16, tf.bfloat16)

_fallback = threading.local()
_original_apply_op_helper = None
_install_lock = threading.Lock()
# How many ops of each type (with their 16-bit type) were built in float32, for tests and logs.
FALLBACK_COUNTS = collections.Counter()


@contextlib.contextmanager
def float32_fallback():
    """Ops created inside with no kernel for their 16-bit input type are built in float32.

    Every TensorFlow op wrapper creates its op through ``op_def_library._apply_op_helper``; while
    this context is active (in this thread), that call first looks at the types its 16-bit inputs
    bind.  When no kernel registered for a device of this process accepts them (or the op's
    definition excludes them) but float32 ones exist, those inputs are cast to float32, the op is
    created in float32 and its outputs of those types are cast back.  The rest of the graph, and
    the gradients (the casts' gradients cast back), keep the compute type.  Ops with a kernel,
    and float32 graphs, are untouched.
    """
    _install_fallback()
    _fallback.depth = getattr(_fallback, "depth", 0) + 1
    try:
        yield
    finally:
        _fallback.depth -= 1


def _install_fallback():
    global _original_apply_op_helper
    with _install_lock:
        if _original_apply_op_helper is None:
            _original_apply_op_helper = op_def_library._apply_op_helper  # pylint: disable=protected-access
            op_def_library._apply_op_helper = _apply_op_with_fallback  # pylint: disable=protected-access


def _apply_op_with_fallback(op_type_name, name=None, **keywords):
    if getattr(_fallback, "depth", 0) > 0 and not getattr(_fallback, "busy", False):
        converted = _float32_plan(op_type_name, keywords)
        if converted:
            return _apply_in_float32(op_type_name, name, keywords, converted)
    return _original_apply_op_helper(op_type_name, name=name, **keywords)


def _dtype_of(value):
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    dtype = getattr(value, "dtype", None)
    return dtype.base_dtype if isinstance(dtype, tf.DType) else None


def _float32_plan(op_type_name, keywords):
    """``{type attr: dtype}`` to build in float32 instead, or None to build the op as asked."""
    op_def = op_def_registry.get(op_type_name)
    if op_def is None:
        return None
    bound = {}
    for arg in op_def.input_arg:
        if arg.type_attr:
            dtype = _dtype_of(keywords.get(arg.name))
            if dtype in LOW_PRECISION_DTYPES:
                bound[arg.type_attr] = dtype
    for attr in op_def.attr:
        value = keywords.get(attr.name)
        if attr.type == "type" and isinstance(value, tf.DType) and value in LOW_PRECISION_DTYPES:
            bound[attr.name] = value
    if not bound:
        return None
    key = tuple(sorted((k, v.name) for k, v in bound.items()))
    if _supported(op_type_name, key):
        return None
    as_float32 = tuple((k, "float32") for k, _ in key)
    if not _supported(op_type_name, as_float32):
        return None  # no better choice: let TensorFlow report it
    log.debug("%s has no kernel for %s: built in float32 between casts", op_type_name, key)
    return bound


@functools.lru_cache(maxsize=None)
def _supported(op_type_name, attr_types):
    """Whether some kernel of ``op_type_name`` on this process's devices takes ``attr_types``."""
    attr_types = dict(attr_types)
    op_def = op_def_registry.get(op_type_name)
    for attr in op_def.attr:
        allowed = attr.allowed_values.list.type
        if attr.name in attr_types and allowed and (
                tf.as_dtype(attr_types[attr.name]).as_datatype_enum not in allowed):
            return False
    kernels = kernels_lib.get_registered_kernels_for_op(op_type_name).kernel
    if not kernels:
        return True  # nothing to go by: assume the op knows its types
    devices = _device_types()
    for kernel in kernels:
        if kernel.device_type not in devices:
            continue
        if all(not c.allowed_values.list.type
               or tf.as_dtype(attr_types[c.name]).as_datatype_enum in c.allowed_values.list.type
               for c in kernel.constraint if c.name in attr_types):
            return True
    return False


@functools.lru_cache(maxsize=None)
def _device_types():
    return frozenset(d.device_type for d in tf.config.list_physical_devices()) | {"DEFAULT"}


def _apply_in_float32(op_type_name, name, keywords, bound):
    op_def = op_def_registry.get(op_type_name)
    converted = set(bound)
    FALLBACK_COUNTS[(op_type_name, ",".join(sorted(d.name for d in bound.values())))] += 1
    _fallback.busy = True
    try:
        keywords = dict(keywords)
        for arg in op_def.input_arg:
            if arg.type_attr in converted and arg.name in keywords:
                value = keywords[arg.name]
                if isinstance(value, (list, tuple)):
                    keywords[arg.name] = [tf.cast(v, tf.float32) for v in value]
                else:
                    keywords[arg.name] = tf.cast(value, tf.float32)
        for attr in converted:
            if attr in keywords:
                keywords[attr] = tf.float32
        structure, stateful, op, outputs = _original_apply_op_helper(
            op_type_name, name=name, **keywords)
        outputs, index = list(outputs), 0
        for arg in op_def.output_arg:
            count = (op.get_attr(arg.number_attr) if arg.number_attr else
                     len(op.get_attr(arg.type_list_attr)) if arg.type_list_attr else 1)
            if arg.type_attr in converted:
                for i in range(index, index + count):
                    outputs[i] = tf.cast(outputs[i], bound[arg.type_attr])
            index += count
        return structure, stateful, op, outputs
    finally:
        _fallback.busy = False


# --------------------------------------------------------------------------- policy
def cpu_has_native_bf16(flags=None):
    """True when the CPU has bfloat16 dot-product instructions (AVX512-BF16 or AMX)."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in _NATIVE_BF16_CPU_FLAGS)


def onednn_enabled():
    """True when TensorFlow's oneDNN ops are on in this process (needed by the bf16 rewrite)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # a TensorFlow without the probe: assume off
        return False


@dataclasses.dataclass(frozen=True)
class PrecisionPolicy:
    """How the network computes.

    Attributes:
      dtype: the arithmetic type (float32, float16 or bfloat16).
      graph_rewrite: bfloat16 by oneDNN's Grappler rewrite; the graph itself is built in float32.
      reason: why this was chosen, for the log.
    """
    dtype: tf.DType = tf.float32
    graph_rewrite: bool = False
    reason: str = ""

    @property
    def build_dtype(self):
        """The dtype to build the network in (:func:`images.training.build_network`)."""
        return tf.float32 if self.graph_rewrite else self.dtype

    @property
    def description(self):
        how = (" (oneDNN graph rewrite)" if self.graph_rewrite else
               " (float32 master weights cast on read)" if self.dtype != tf.float32 else "")
        return self.dtype.name + how

    def configure_session(self, config):
        """Turns the bfloat16 rewrite on in ``config`` (a ``tf.ConfigProto``) when asked for."""
        if self.graph_rewrite:
            from tensorflow.core.protobuf import rewriter_config_pb2
            config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = (
                rewriter_config_pb2.RewriterConfig.ON)
        return config


def resolve_policy(use_fp16=None, use_bf16=None, gpu_available=False, native_bf16=None,
                   onednn=None):
    """Chooses the compute dtype from the flags and the machine.

    Defaults (a flag left at None): float16 with a GPU; on a CPU, bfloat16 when it has native
    bfloat16 instructions (AVX512-BF16 or AMX), else float32.  Asked-for bfloat16 on a CPU uses
    oneDNN's graph rewrite when oneDNN is on, else the custom getter.

    Args:
      use_fp16: ``--use_fp16`` (None: on with a GPU unless bfloat16 was asked for).
      use_bf16: ``--use_bf16`` (None: on for a CPU-only run on a CPU with native bfloat16).
      gpu_available: a GPU is visible.
      native_bf16: the CPU has bfloat16 instructions (None: read /proc/cpuinfo).
      onednn: TensorFlow's oneDNN ops are on (None: ask TensorFlow).

    Raises:
      ValueError: both 16-bit types asked for.
    """
    if use_fp16 and use_bf16:
        raise ValueError("--use_fp16 and --use_bf16 exclude each other; give one of them")
    native_bf16 = cpu_has_native_bf16() if native_bf16 is None else native_bf16
    if use_fp16 is None:
        use_fp16 = gpu_available and not use_bf16
        fp16_why = "default with a GPU"
    else:
        fp16_why = "--use_fp16"
    if use_fp16:
        why = fp16_why
        if not gpu_available:
            why += "; TensorFlow's CPU float16 kernels are slow: a correctness path only"
            log.warning("--use_fp16 on a CPU: float16 kernels here are much slower than float32 "
                        "(docs/distributed.md); use it on GPUs")
        return PrecisionPolicy(tf.float16, False, why)
    if use_bf16 is None:
        use_bf16 = native_bf16 and not gpu_available
        if not use_bf16:
            return PrecisionPolicy(tf.float32, False, "default: " + (
                "--use_fp16=False" if gpu_available else "this CPU has no bfloat16 instructions"))
        why = "default on a CPU with bfloat16 instructions"
    elif not use_bf16:
        return PrecisionPolicy(tf.float32, False, "--use_bf16=False")
    else:
        why = "--use_bf16"
    if not native_bf16 and not gpu_available:
        log.warning("--use_bf16 on a CPU without bfloat16 instructions (avx512_bf16/amx_bf16): "
                    "TensorFlow emulates them and a step is several times slower than in "
                    "float32 (docs/distributed.md)")
    onednn = onednn_enabled() if onednn is None else onednn
    if gpu_available or not onednn:
        return PrecisionPolicy(tf.bfloat16, False, why + (
            "" if gpu_available else "; oneDNN is off (TF_ENABLE_ONEDNN_OPTS), so the custom "
            "getter computes in bfloat16"))
    return PrecisionPolicy(tf.bfloat16, True, why)


# --------------------------------------------------------------------------- loss scaling
@dataclasses.dataclass(frozen=True)
class LossScaleConfig:
    """``mode`` is ``none``, ``static`` (multiply by ``value``) or ``dynamic``."""
    mode: str = "none"
    value: float = 1.0
    growth_steps: int = 2000
    initial_dynamic: float = 2.0 ** 15

    @staticmethod
    def parse(text, growth_steps=2000, initial_dynamic=2.0 ** 15):
        """``'dynamic'``, or a number (1 means no scaling)."""
        text = str(text).strip().lower()
        if text == "dynamic":
            return LossScaleConfig("dynamic", initial_dynamic, growth_steps, initial_dynamic)
        try:
            value = float(text)
        except ValueError:
            raise ValueError("--loss_scale must be a number >= 1 or 'dynamic', got %r"
                             % text) from None
        if not value >= 1.0:
            raise ValueError("--loss_scale must be >= 1 (or 'dynamic'), got %g" % value)
        return LossScaleConfig("none" if value == 1.0 else "static", value, growth_steps,
                               initial_dynamic)


class GradientPolicyOptimizer(tf.train.Optimizer):
    """Wraps an optimizer with loss scaling and gradient clipping by global norm.

    ``compute_gradients`` scales the loss and unscales the gradients; ``apply_gradients`` clips
    (after any allreduce done by a Horovod wrapper around this object), then applies the update or,
    with dynamic scaling and a non-finite gradient, skips it.  The global step advances either way.
    Under Horovod the averaged gradients are the same on every worker, so every worker takes the
    same decision.
    """

    def __init__(self, optimizer, loss_scale: LossScaleConfig = LossScaleConfig(),
                 max_gradient_norm: Optional[float] = None, name="GradientPolicy"):
        super().__init__(use_locking=False, name=name)
        self._opt = optimizer
        self._ls = loss_scale
        self._clip = max_gradient_norm
        self._scale_var = None
        self._good_steps = None
        if loss_scale.mode == "dynamic":
            # Global (not trainable) so checkpoints keep the scale and the broadcast hook syncs it.
            with tf.variable_scope(None, default_name="loss_scale"):
                self._scale_var = tf.get_variable(
                    "scale", initializer=tf.constant(float(loss_scale.initial_dynamic)),
                    trainable=False, collections=[tf.GraphKeys.GLOBAL_VARIABLES])
                self._good_steps = tf.get_variable(
                    "good_steps", initializer=tf.constant(0, tf.int64), trainable=False,
                    collections=[tf.GraphKeys.GLOBAL_VARIABLES])

    @property
    def inner(self):
        """The wrapped optimizer."""
        return self._opt

    @property
    def loss_scale_config(self):
        """The :class:`LossScaleConfig` in force."""
        return self._ls

    def loss_scale(self):
        """The current scale as a float32 tensor."""
        if self._scale_var is not None:
            return tf.identity(self._scale_var)
        return tf.constant(self._ls.value if self._ls.mode == "static" else 1.0, tf.float32)

    def compute_gradients(self, loss, var_list=None, **kwargs):
        # Gradient ops of a 16-bit network may lack a 16-bit kernel too.
        with float32_fallback():
            return self._compute_gradients(loss, var_list, **kwargs)

    def _compute_gradients(self, loss, var_list, **kwargs):
        if self._ls.mode == "none":
            return self._opt.compute_gradients(loss, var_list=var_list, **kwargs)
        scale = self.loss_scale()
        grads_and_vars = self._opt.compute_gradients(loss * scale, var_list=var_list, **kwargs)
        inv = 1.0 / scale
        return [(None if g is None else _scale_grad(g, inv), v) for g, v in grads_and_vars]

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
        grads = [g for g, _ in grads_and_vars]
        variables = [v for _, v in grads_and_vars]
        if self._clip:
            grads, _ = tf.clip_by_global_norm(grads, self._clip)
        pairs = list(zip(grads, variables))
        if self._ls.mode != "dynamic":
            return self._opt.apply_gradients(pairs, global_step=global_step, name=name)
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(_dense(g))) for g in grads],
                               name="grads_finite")

        def apply():
            with tf.control_dependencies([self._opt.apply_gradients(pairs)]):
                return tf.constant(True)

        def skip():
            return tf.constant(False)

        applied = tf.cond(finite, apply, skip)
        updates = [self._update_scale(applied)]
        if global_step is not None:
            with tf.control_dependencies([applied]):
                updates.append(tf.assign_add(global_step, 1))
        return tf.group(*updates, name=name or "apply_gradients")

    def _update_scale(self, finite):
        growth = self._ls.growth_steps
        ceiling = max(MAX_DYNAMIC_SCALE, float(self._ls.initial_dynamic))

        def grow_or_count():
            good = self._good_steps + 1
            grow = good >= growth
            new_scale = tf.where(grow, tf.minimum(self._scale_var * 2.0, ceiling),
                                 self._scale_var)
            return tf.group(self._scale_var.assign(new_scale),
                            self._good_steps.assign(tf.where(grow, tf.zeros_like(good), good)))

        def shrink():
            return tf.group(self._scale_var.assign(tf.maximum(self._scale_var * 0.5, 1.0)),
                            self._good_steps.assign(tf.zeros_like(self._good_steps)))

        return tf.cond(finite, grow_or_count, shrink)

    # Pass-throughs so wrappers (Horovod) and savers see the inner optimizer's state.
    def get_slot(self, var, name):
        return self._opt.get_slot(var, name)

    def get_slot_names(self):
        return self._opt.get_slot_names()

    def variables(self):
        own = [v for v in (self._scale_var, self._good_steps) if v is not None]
        return self._opt.variables() + own


def _dense(g):
    return g.values if isinstance(g, tf.IndexedSlices) else g


def _scale_grad(g, factor):
    if isinstance(g, tf.IndexedSlices):
        return tf.IndexedSlices(g.values * tf.cast(factor, g.values.dtype), g.indices,
                                g.dense_shape)
    return g * tf.cast(factor, g.dtype)
