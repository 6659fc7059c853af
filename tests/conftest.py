"""Shared fixtures: the repository on sys.path, quiet TensorFlow, subprocess runners."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONWARNINGS", "ignore")

PYTHON = sys.executable
BIN = os.path.dirname(PYTHON)


def run_script(args, timeout=600, env=None, check=True, cwd=ROOT):
    """Runs ``python <args>`` from the repository root; returns the CompletedProcess.

    On an unexpected exit code the assertion shows the tail of stdout and stderr.
    """
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    proc = subprocess.run([PYTHON] + list(args), cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("%s exited %d\n--- stdout\n%s\n--- stderr\n%s" % (
            " ".join(args), proc.returncode, proc.stdout[-4000:], proc.stderr[-6000:]))
    return proc


def horovodrun(args, np_=2, timeout=600, env=None, check=True):
    """Runs ``horovodrun -np N -H localhost:N --gloo python <args>`` on the CPU."""
    cmd = [os.path.join(BIN, "horovodrun"), "-np", str(np_), "-H", "localhost:%d" % np_,
           "--gloo", PYTHON] + list(args)
    full_env = dict(os.environ, PYTHONPATH=ROOT, PATH=BIN + os.pathsep + os.environ["PATH"],
                    **(env or {}))
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("%s exited %d\n--- stdout\n%s\n--- stderr\n%s" % (
            " ".join(cmd), proc.returncode, proc.stdout[-6000:], proc.stderr[-6000:]))
    return proc


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """The digits dataset converted once per test session."""
    from images.datasets import convert_digits
    path = str(tmp_path_factory.mktemp("digits"))
    convert_digits.run(path)
    return path


@pytest.fixture
def graph():
    """A fresh default graph for a test building TF1 ops."""
    import tensorflow.compat.v1 as tf
    g = tf.Graph()
    with g.as_default():
        yield g


# `make test` runs the files on two pytest-xdist workers, a file to a worker.  The zoo's file is
# the longest (about a third of the suite, with its own background trainer process): starting it
# first lets the other worker take the remaining files meanwhile instead of waiting at the end.
FIRST_FILES = ("test_models.py", "test_precision.py")


def pytest_collection_modifyitems(session, config, items):
    """Moves the tests of ``FIRST_FILES`` to the front, keeping every other order."""
    items.sort(key=lambda item: os.path.basename(str(item.fspath)) not in FIRST_FILES)
