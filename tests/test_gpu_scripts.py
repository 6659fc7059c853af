"""The GPU scripts on a machine without a GPU, and the trainer's --xla.

The GPU build itself (`make check-gpu-build`, several GB of wheels) is not part of the suite:
docs/distributed.md, "GPUs", records its run.
"""
import glob
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, run_script
from images.utils import xla

SMOKE_SH = os.path.join(ROOT, "scripts", "gpu_smoke.sh")


def test_smoke_script_says_no_gpu_and_exits_0():
    path = "/usr/bin:/bin"
    if shutil.which("nvidia-smi", path=path):
        pytest.skip("this machine has an NVIDIA driver")
    proc = subprocess.run(["bash", SMOKE_SH], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PATH=path))
    assert proc.returncode == 0, proc.stderr
    assert "no GPU here" in proc.stdout and "nothing to run" in proc.stdout


def test_smoke_program_without_a_visible_gpu_exits_0():
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    proc = run_script(["scripts/gpu_smoke.py"], timeout=120)
    assert "no GPU visible to TensorFlow" in proc.stdout


def test_allow_cpu_jit_adds_the_flag_once_and_keeps_the_users():
    env = {}
    xla.allow_cpu_jit(env)
    assert env == {"TF_XLA_FLAGS": xla.CPU_JIT}
    env = {"TF_XLA_FLAGS": "--tf_xla_min_cluster_size=2"}
    xla.allow_cpu_jit(env)
    xla.allow_cpu_jit(env)
    assert env["TF_XLA_FLAGS"].split() == ["--tf_xla_min_cluster_size=2", xla.CPU_JIT]


def test_describe_says_what_is_in_force():
    assert xla.describe(False, {}) == "XLA: off"
    assert xla.describe(True, {}).startswith("XLA: on")
    assert "not --xla" in xla.describe(False, {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2"})
    with pytest.raises(ValueError, match="turns it off"):
        xla.describe(True, {"TF_XLA_FLAGS": "--tf_xla_auto_jit=-1"})


def test_configure_session_sets_the_jit_level_only_when_asked():
    import tensorflow.compat.v1 as tf
    assert xla.configure_session(tf.ConfigProto(), True).graph_options.optimizer_options \
        .global_jit_level == tf.OptimizerOptions.ON_1
    assert xla.configure_session(tf.ConfigProto(), False).graph_options.optimizer_options \
        .global_jit_level == tf.OptimizerOptions.DEFAULT


def _trainer_args(train_dir, *extra):
    return ["train_image_classifiers.py", "--model_name=lenet", "--dataset_name=mock",
            "--num_classes=10", "--batch_size=4", "--stop_at_step=3", "--optimizer=sgd",
            "--train_dir=%s" % train_dir, "--save_summaries_steps=0",
            "--log_loss_every_n_iters=1", "--use_bf16=False",
            "--use_fp16=False"] + list(extra)


@pytest.mark.parametrize("use_xla", [True, False])
def test_trainer_runs_the_step_through_xla_only_with_xla(tmp_path, use_xla):
    # The step's Chrome trace (ProfilerHook) names the ops that ran: with --xla the network's
    # ops run inside XLA clusters (_XlaCompile / _XlaRun); without it none do, although the
    # trainer always registers the CPU device for XLA.
    proc = run_script(_trainer_args(tmp_path, "--xla=%s" % use_xla, "--profile_every_n_iters=2",
                                    "--hooks=StopAtStepHook,ProfilerHook,LoggingTensorHook"),
                      timeout=300, env={"TF_XLA_FLAGS": ""})
    assert ("XLA: on" if use_xla else "XLA: off") in proc.stderr
    traces = glob.glob(os.path.join(str(tmp_path), "timeline-*.json"))
    assert traces, os.listdir(str(tmp_path))
    text = open(traces[0]).read()
    assert ("_XlaRun" in text) == use_xla


def test_trainer_xla_contradicting_environment_is_a_usage_error(tmp_path):
    proc = run_script(_trainer_args(tmp_path, "--xla"), check=False, timeout=120,
                      env={"TF_XLA_FLAGS": "--tf_xla_auto_jit=-1"})
    assert proc.returncode != 0
    assert "turns it off" in proc.stderr and "Traceback" not in proc.stderr
