"""XLA's just-in-time compiler for the trainer (``--xla``).

With auto-clustering on (the session's ``global_jit_level``), TensorFlow's graph optimizer groups
the ops XLA can compile (convolutions, matmuls, element-wise chains, their gradients) into
clusters, each compiled into fused kernels the first time it runs (``_XlaCompile`` / ``_XlaRun``
in a step's trace).  Ops XLA cannot compile (the input pipeline, Horovod's collectives, summaries)
run as before, between clusters.

GPUs follow the session's setting.  CPUs do only when TensorFlow registered its CPU device with
``--tf_xla_cpu_global_jit`` in ``TF_XLA_FLAGS``, which it reads once, before the first session
or device query: :func:`allow_cpu_jit` must run before that, at the top of an entry point.  By
itself that flag compiles nothing.
"""
import os
import re

CPU_JIT = "--tf_xla_cpu_global_jit"
_AUTO_JIT_RE = re.compile(r"--tf_xla_auto_jit=(\S+)")


def allow_cpu_jit(environ=None):
    """Lets a session that asks for XLA cluster CPU ops too (adds ``--tf_xla_cpu_global_jit``).

    Args:
      environ: the environment to change (default ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    current = environ.get("TF_XLA_FLAGS", "")
    if CPU_JIT not in current.split():
        environ["TF_XLA_FLAGS"] = (current + " " + CPU_JIT).strip()


def describe(enabled, environ=None):
    """A log line saying whether XLA compiles the step, and why.

    Args:
      enabled: ``--xla``.
      environ: the environment to read (default ``os.environ``).

    Raises:
      ValueError: ``--xla`` while ``TF_XLA_FLAGS`` turns auto-clustering off
        (``--tf_xla_auto_jit=-1`` overrides the session's setting).
    """
    environ = os.environ if environ is None else environ
    current = environ.get("TF_XLA_FLAGS", "")
    level = _AUTO_JIT_RE.search(current)
    level = level.group(1) if level else "0"  # 0: the session's setting decides
    if enabled and level == "-1":
        raise ValueError("--xla asks for XLA auto-clustering but TF_XLA_FLAGS=%r turns it off; "
                         "drop --xla or remove --tf_xla_auto_jit=-1 from TF_XLA_FLAGS" % current)
    if level not in ("0", "-1"):
        return "XLA: on, from TF_XLA_FLAGS=%r%s" % (current, "" if enabled else " (not --xla)")
    return "XLA: on (global_jit_level ON_1)" if enabled else "XLA: off"


def configure_session(config, enabled):
    """Turns XLA auto-clustering on in ``config`` (a ``tf.ConfigProto``) when ``enabled``."""
    if enabled:
        import tensorflow.compat.v1 as tf
        config.graph_options.optimizer_options.global_jit_level = tf.OptimizerOptions.ON_1
    return config


def compiled_ops(run_metadata):
    """The XLA op types (``_XlaCompile``, ``_XlaRun``, ...) in a traced step's ``RunMetadata``.

    Empty when nothing of the step ran through XLA.  Run the step with
    ``tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)`` to fill ``run_metadata``.
    """
    found = set()
    for dev in run_metadata.step_stats.dev_stats:
        for node in dev.node_stats:
            # timeline_label reads "name = OpType(inputs)".
            op = node.timeline_label.split("(", 1)[0].split("=")[-1].strip()
            if op.startswith("_Xla"):
                found.add(op)
    return found
