"""Horovod data parallelism: equivalence, identical workers, resume, failures (issue 5).

The multi-process tests run under ``horovodrun -np 2 -H localhost:2 --gloo``; several checks share
one launch (tests/hvd_scripts/data_parallel.py) because a launch costs about ten seconds.
"""
import glob
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

from background import BackgroundRun
from conftest import BIN, PYTHON, ROOT, horovodrun

SCRIPT = os.path.join(ROOT, "tests", "hvd_scripts", "data_parallel.py")
TRAINER = os.path.join(ROOT, "train_image_classifiers.py")
LENET_MOCK = ["--model_name=lenet", "--dataset_name=mock", "--num_classes=10", "--batch_size=4",
              "--optimizer=momentum", "--learning_rate=0.01", "--log_loss_every_n_iters=1",
              "--num_intra_threads=1", "--num_inter_threads=1", "--random_seed=3"]


# ----------------------------------------------------------------------------- unit level
def test_one_worker_outside_horovodrun():
    from images.utils import distributed
    for enable in (True, False):
        cluster = distributed.init_cluster(enable, environ={})
        assert (cluster.rank, cluster.size, cluster.distributed) == (0, 1, False)


def test_paisoar_off_under_horovodrun_is_refused():
    from images.utils import distributed
    env = {"HOROVOD_RANK": "1", "HOROVOD_SIZE": "2"}
    assert distributed.launched_size(env) == 2
    with pytest.raises(ValueError, match="enable_paisoar=False.*separate models"):
        distributed.init_cluster(False, environ=env)


def test_seeded_launch_of_more_than_two_workers_sums_unfused():
    # Fusion makes the order of a 3+ worker sum depend on timing; a seeded run needs one order.
    from images.utils import distributed
    four = {"HOROVOD_RANK": "0", "HOROVOD_SIZE": "4"}
    assert distributed.reproducible_sums_env(True, four) == {"HOROVOD_FUSION_THRESHOLD": "0"}
    assert distributed.reproducible_sums_env(False, four) == {}
    # Two workers' sum is exact in either order; one worker has none.
    assert distributed.reproducible_sums_env(True, dict(four, HOROVOD_SIZE="2")) == {}
    assert distributed.reproducible_sums_env(True, {}) == {}
    # An explicit threshold (--tensor_fusion_max_bytes or the environment) wins.
    assert distributed.reproducible_sums_env(
        True, dict(four, HOROVOD_FUSION_THRESHOLD="8388608")) == {}


def test_bad_distributed_options_are_refused(graph):
    import tensorflow.compat.v1 as tf
    from images.utils import distributed
    opt = tf.train.GradientDescentOptimizer(0.1)
    cluster = distributed.Cluster()
    assert distributed.distributed_optimizer(cluster, opt) is opt
    with pytest.raises(ValueError, match="unknown allreduce op 'sum'.*average, adasum"):
        distributed.distributed_optimizer(cluster, opt, op="sum")
    with pytest.raises(ValueError, match="unknown gradient compression 'int8'"):
        distributed.distributed_optimizer(cluster, opt, compression="int8")


def test_session_defaults_split_the_cores_between_local_workers():
    import tensorflow.compat.v1 as tf
    from images.utils import distributed
    cluster = distributed.Cluster(rank=3, size=4, local_rank=1, local_size=2, hvd=object())
    config = distributed.configure_session(
        cluster, tf.ConfigProto(inter_op_parallelism_threads=3))
    assert config.gpu_options.visible_device_list == "1"  # its own GPU, if any
    assert config.intra_op_parallelism_threads == max(1, os.cpu_count() // 2)
    assert config.inter_op_parallelism_threads == 3  # a value given is kept
    plain = distributed.configure_session(distributed.Cluster(), tf.ConfigProto())
    assert plain.intra_op_parallelism_threads == 0 and not plain.gpu_options.visible_device_list


def test_lost_worker_message_names_the_cause():
    import tensorflow.compat.v1 as tf
    from images.utils import distributed
    cluster = distributed.Cluster(rank=0, size=2, hvd=object())
    gloo = tf.errors.UnknownError(None, None, "Graph execution error:\n\nHorovod has been shut "
                                  "down. This was caused by an exception on one of the ranks")
    message = distributed.lost_worker_message(cluster, gloo)
    assert "worker 0 of 2" in message and "HOROVOD_GLOO_TIMEOUT_SECONDS" in message
    assert "Horovod has been shut down" in message
    other = tf.errors.InvalidArgumentError(None, None, "Incompatible shapes: [2] vs. [3]")
    assert distributed.lost_worker_message(cluster, other) is None
    assert distributed.lost_worker_message(distributed.Cluster(), gloo) is None


# ----------------------------------------------------------------------------- one launch, many checks
@pytest.fixture(scope="module")
def data_parallel(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("data_parallel"))
    horovodrun([SCRIPT, out], timeout=600)

    def load(name):
        path = os.path.join(out, name)
        return open(path).read() if name.endswith(".txt") else dict(np.load(path))
    return load


def _weights(arrays):
    return [arrays[k] for k in sorted((k for k in arrays if re.fullmatch(r"w\d+", k)),
                                      key=lambda k: int(k[1:]))]


@pytest.mark.horovod
def test_every_worker_holds_identical_weights(data_parallel):
    for check in ("equivalence", "accumulation"):
        r0, r1 = data_parallel(check + ".rank0.npz"), data_parallel(check + ".rank1.npz")
        assert len(_weights(r0)) == 8  # lenet: 4 layers x (weights, biases)
        for a, b in zip(_weights(r0), _weights(r1)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.horovod
def test_two_workers_match_one_worker_on_the_concatenated_batch(data_parallel):
    ref = data_parallel("equivalence.reference.npz")
    dist = data_parallel("equivalence.rank0.npz")
    assert int(dist["step"]) == 3
    # Clipping acted on every step (so it must have seen the averaged gradient to match).
    assert (ref["norms"] > 0.5).all() and (ref["local_norms"] > 0.5).all()
    for a, b in zip(_weights(dist), _weights(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.horovod
def test_accumulated_passes_match_one_step_on_all_batches(data_parallel):
    dist = data_parallel("accumulation.rank0.npz")
    ref = data_parallel("accumulation.reference.npz")
    assert int(dist["step"]) == 2  # the global step counts backward passes
    for a, b in zip(_weights(dist), _weights(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.horovod
def test_dynamic_loss_scale_skips_an_inf_step_on_every_worker(data_parallel):
    for rank in (0, 1):  # only rank 1's gradient was infinite; the average spreads it
        d = data_parallel("dynamic.rank%d.npz" % rank)
        # state before steps 1..5 and after step 5; step 2 is the poisoned one
        np.testing.assert_array_equal(d["scale"], [1024, 1024, 512, 512, 1024, 1024])
        np.testing.assert_array_equal(d["step"], [0, 1, 2, 3, 4, 5])
        np.testing.assert_array_equal(d["w"][1], d["w"][2])        # update skipped
        np.testing.assert_array_equal(d["slot"][1], d["slot"][2])  # momentum untouched
        for i in (0, 2, 3, 4):                                      # clean steps update
            assert not np.array_equal(d["w"][i], d["w"][i + 1])
        assert np.isfinite(d["w"]).all() and np.isfinite(d["slot"]).all()
    np.testing.assert_array_equal(data_parallel("dynamic.rank0.npz")["w"],
                                  data_parallel("dynamic.rank1.npz")["w"])


@pytest.mark.horovod
def test_adasum_is_refused_under_gloo(data_parallel):
    for rank in (0, 1):
        assert "needs Horovod's MPI controller" in data_parallel("adasum.rank%d.txt" % rank)


# ----------------------------------------------------------------------------- the trainer
def _rank_steps(output, rank):
    return [int(m) for m in re.findall(r"\[rank %d\] INFO step=(\d+)," % rank, output)]


@pytest.mark.horovod
def test_trainer_resumes_every_worker_from_rank0_checkpoint(tmp_path):
    train_dir = str(tmp_path / "train")
    first = horovodrun([TRAINER, "--train_dir=" + train_dir, "--stop_at_step=4"] + LENET_MOCK)
    out = first.stdout + first.stderr
    assert "batch 4 x 2 worker(s)" in out
    assert _rank_steps(out, 0) and _rank_steps(out, 1)  # both ranks log, tagged
    # Checkpoints and summaries come from rank 0 alone: one events file, no second writer.
    assert os.path.exists(os.path.join(train_dir, "model.ckpt-4.index"))
    assert len(glob.glob(os.path.join(train_dir, "events.out.tfevents.*"))) == 1
    # samples/sec counts the global batch (2 workers x 4); sec/step is per step of the job.
    for sec, rate in re.findall(r"\[rank 0\] INFO step=\d+,.*sec/step=([\d.]+), "
                                r"samples/sec=([\d.]+)", out):
        assert float(rate) == pytest.approx(8 / float(sec), rel=0.02, abs=0.2)

    second = horovodrun([TRAINER, "--train_dir=" + train_dir, "--stop_at_step=7"] + LENET_MOCK)
    out = second.stdout + second.stderr
    assert re.search(r"\[rank 0\] INFO resuming from .*model\.ckpt-4", out)
    steps1 = _rank_steps(out, 1)
    assert steps1 and min(steps1) > 4 and max(steps1) == 7, out[-3000:]
    assert os.path.exists(os.path.join(train_dir, "model.ckpt-7.index"))
    assert len(glob.glob(os.path.join(train_dir, "events.out.tfevents.*"))) == 2  # one per run


# ----------------------------------------------------------------------------- failures
def _descendants(root):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _worker_pid(launcher_pid, rank):
    """The python process of ``rank`` among the launcher's descendants."""
    for pid in _descendants(launcher_pid):
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"HOROVOD_RANK=%d" % rank in env and argv[0].endswith(b"python") and any(
                a.endswith(b"train_image_classifiers.py") for a in argv):
            return pid
    return None


class _Launch(BackgroundRun):
    """horovodrun of the trainer in the background, its output collected line by line."""

    def __init__(self, args, env=None):
        full_env = dict(os.environ, PYTHONPATH=ROOT, PATH=BIN + os.pathsep + os.environ["PATH"],
                        **(env or {}))
        super().__init__([os.path.join(BIN, "horovodrun"), "-np", "2", "-H", "localhost:2",
                          "--gloo", PYTHON, TRAINER] + args, full_env, ROOT)


def _failing_run(tmp_path, sig, env=None, bound=90):
    launch = _Launch(["--train_dir=" + str(tmp_path / "train"), "--stop_at_step=100000",
                      "--save_checkpoints_steps=100000"] + LENET_MOCK, env=env)
    victim = None
    try:
        assert launch.wait_for(r"\[rank 1\] INFO step=\d+", 300), launch.output[-3000:]
        victim = _worker_pid(launch.proc.pid, 1)
        assert victim, "rank 1's process not found"
        os.kill(victim, sig)
        start = time.time()
        try:
            code = launch.proc.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            pytest.fail("the job still ran %ds after rank 1 got signal %d:\n%s"
                        % (bound, sig, launch.output[-3000:]))
        return code, time.time() - start, launch.output
    finally:
        if victim:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        launch.close()


@pytest.mark.horovod
def test_killed_worker_ends_the_job_non_zero(tmp_path):
    code, elapsed, out = _failing_run(tmp_path, signal.SIGKILL)
    assert code != 0
    assert "exited with non-zero status" in out and "Process name: 1" in out, out[-3000:]
    assert elapsed < 60


@pytest.mark.horovod
def test_hung_worker_ends_the_job_with_a_clear_message(tmp_path):
    # A stopped process keeps its sockets open: only the Gloo timeout can notice it.
    code, elapsed, out = _failing_run(tmp_path, signal.SIGSTOP,
                                      env={"HOROVOD_GLOO_TIMEOUT_SECONDS": "10"})
    assert code != 0
    assert re.search(r"\[rank 0\] ERROR worker 0 of 2: a collective with the other workers "
                     r"failed.*HOROVOD_GLOO_TIMEOUT_SECONDS=10", out), out[-3000:]
    assert elapsed < 10 + 45
