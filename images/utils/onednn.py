"""oneDNN on by default where it is faster, decided from the CPU before TensorFlow is imported.

TensorFlow 2.15 turns its oneDNN kernels on by itself only on x86 CPUs with AVX512-VNNI, AVX512-BF16
or AMX.  On AVX2 CPUs without them it leaves them off, although float32 resnet_v1_50 training
measured 1.25-1.3x faster with them on (docs/BENCHMARKS.md, "oneDNN").  TensorFlow reads
``TF_ENABLE_ONEDNN_OPTS`` once, when it is imported, so every entry point calls :func:`configure`
before its first TensorFlow import.  A value the user set in the environment always wins.

Nothing here imports TensorFlow.
"""
import os
import platform
import sys

ENV = "TF_ENABLE_ONEDNN_OPTS"

# oneDNN's x86 kernels need these; with them its float32 convolutions beat TensorFlow's Eigen
# kernels on every CPU we measured.
_FAST_X86_FLAGS = ("avx2", "fma")


def cpu_flags(path="/proc/cpuinfo"):
    """The feature flags of the first CPU in ``path`` (empty when it cannot be read)."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def decide(environ, flags, machine):
    """``(value to set or None, reason)`` for ``TF_ENABLE_ONEDNN_OPTS``.

    Args:
      environ: the environment (a user's ``TF_ENABLE_ONEDNN_OPTS`` there wins).
      flags: the CPU's feature flags (``/proc/cpuinfo``).
      machine: ``platform.machine()``.
    """
    if ENV in environ:
        return None, "oneDNN %s: %s=%s from the environment" % (
            "off" if environ[ENV].strip() in ("0", "false", "False") else "on", ENV,
            environ[ENV])
    if machine.lower() in ("x86_64", "amd64") and all(f in flags for f in _FAST_X86_FLAGS):
        return "1", ("oneDNN on: this CPU has AVX2 and FMA, where oneDNN's kernels are faster "
                     "(docs/BENCHMARKS.md); %s=0 turns it off" % ENV)
    return None, "oneDNN left to TensorFlow's default for this CPU (%s sets it)" % ENV


def configure(environ=None):
    """Sets ``TF_ENABLE_ONEDNN_OPTS`` for this process where oneDNN is faster; returns why.

    Call it before TensorFlow is imported (the entry points do, at their top): once TensorFlow
    is loaded the variable has no effect, and the returned reason says so.
    """
    environ = os.environ if environ is None else environ
    value, reason = decide(environ, cpu_flags(), platform.machine())
    if value is not None:
        if "tensorflow" in sys.modules:
            return "oneDNN not changed: TensorFlow was imported before the entry point set %s" % ENV
        environ[ENV] = value
    return reason
