"""Data-parallel training across two hosts (issue 16): the recipe's set-up, the same weights as on
one host, resume, and the files that need to exist only on rank 0's host.

Four launches of lenet on the digits share one fixture: ``-H h1:4`` (one host, launched from h2)
and ``-H h1:2,h2:2`` (two hosts, launched from h1), each to step 3 and then resumed to step 6.
"""
import os
import re
import shutil

import numpy as np
import pytest

from cluster_helpers import LOCAL, TRAINER, rank_steps

# Seeded, four workers: the trainer turns Horovod's tensor fusion off, so every gradient is summed
# in one order and one host and two end with the same weights bit for bit.  (With fusion the
# buffer layout follows timing, and identical runs differed by up to 1e-2 in a momentum slot.)
# float32, as the gradients' bfloat16 rounding is not what this file is about.
LENET = ["--model_name=lenet", "--dataset_name=digits", "--batch_size=4",
         "--optimizer=momentum", "--learning_rate=0.05", "--log_loss_every_n_iters=1",
         "--random_seed=3", "--save_checkpoints_steps=1000", "--use_bf16=False"]


def test_recipe_password_less_ssh_by_name_and_one_interface(cluster):
    # Each host has its own name, resolves the others', and takes the cluster key (BatchMode:
    # a password prompt would fail instead of waiting).
    assert cluster.run("h1", ["ssh", "h2", "hostname"]).stdout.strip() == "h2"
    assert cluster.run("h2", ["ssh", "h1", "hostname"]).stdout.strip() == "h1"
    assert cluster.run("h1", ["ssh", "h1", "true"]).returncode == 0
    # The interface given to --network-interface exists on every host, with its own address.
    addresses = [re.search(r"inet ([\d.]+)/", cluster.run(h, ["ip", "-4", "addr", "show",
                                                             "eth0"]).stdout).group(1)
                 for h in ("h1", "h2")]
    assert len(set(addresses)) == 2
    # The project is at the same path everywhere (the shared file system).
    assert cluster.run("h1", ["ssh", "h2", "test", "-f", os.path.abspath(TRAINER)]).returncode == 0


@pytest.fixture(scope="module")
def runs(cluster, digits4, tmp_path_factory):
    one = str(tmp_path_factory.mktemp("one_host"))   # shared file system
    two = os.path.join(LOCAL, "two")                 # h1's own disk: seen by no other host
    data = ["--dataset_dir=" + digits4]
    out = {}
    for steps in (3, 6):
        out["one%d" % steps] = cluster.horovodrun(
            "h1:4", [TRAINER, "--train_dir=" + one, "--stop_at_step=%d" % steps] + LENET + data,
            launch_from="h2")
        out["two%d" % steps] = cluster.horovodrun(
            "h1:2,h2:2", [TRAINER, "--train_dir=" + two, "--stop_at_step=%d" % steps]
            + LENET + data)
    out["one"], out["two"] = one, cluster.on_host("h1", two)
    out["two_from_h2"] = cluster.on_host("h2", two)
    return out


def _variables(prefix):
    import tensorflow.compat.v1 as tf
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def test_two_hosts_train_the_same_weights_as_one_host(runs):
    one = _variables(os.path.join(runs["one"], "model.ckpt-3"))
    two = _variables(os.path.join(runs["two"], "model.ckpt-3"))
    assert set(one) == set(two) and len(one) >= 9  # lenet's weights, slots, the global step
    for name in one:
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)
    first = _variables(os.path.join(runs["two"], "model.ckpt-0"))
    assert any(not np.array_equal(first[n], two[n]) for n in two if "weights" in n)


def test_every_worker_resumes_across_hosts(runs):
    out = runs["two6"].stdout + runs["two6"].stderr
    assert re.search(r"\[rank 0\] INFO .*resum.*model\.ckpt-3", out), out[-3000:]
    for rank in (2, 3):  # the workers on h2
        steps = rank_steps(out, rank)
        assert steps and min(steps) > 3 and max(steps) == 6, (rank, steps)
    one = _variables(os.path.join(runs["one"], "model.ckpt-6"))
    two = _variables(os.path.join(runs["two"], "model.ckpt-6"))
    for name in one:
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)
    assert "tensor fusion off (HOROVOD_FUSION_THRESHOLD=0)" in out, out[-3000:]


def test_train_dir_exists_only_on_rank0_host(runs):
    assert os.path.exists(os.path.join(runs["two"], "model.ckpt-6.index"))
    assert os.path.exists(os.path.join(runs["two"], "flags.txt"))
    # Neither h2 (ranks 2 and 3) nor the shared file system holds any of it.
    assert not os.path.exists(runs["two_from_h2"])
    assert not os.path.exists(os.path.join(LOCAL, "two"))


def test_finished_run_restarted_across_hosts_stays_finished(cluster, runs, digits4):
    # Only rank 0 can check the checkpoint: h2 has neither it nor the run record.
    before = sorted(os.listdir(runs["two"]))
    proc = cluster.horovodrun("h1:2,h2:2", [
        TRAINER, "--train_dir=" + os.path.join(LOCAL, "two"), "--stop_at_step=6",
        "--dataset_dir=" + digits4] + LENET)
    out = proc.stdout + proc.stderr
    assert "run complete" in out and "Traceback" not in out, out[-3000:]
    assert not any(rank_steps(out, rank) for rank in range(4))
    assert sorted(os.listdir(runs["two"])) == before


def _write_zero_checkpoint(like, prefix):
    """A checkpoint of ``like``'s model variables, every value zero."""
    import tensorflow.compat.v1 as tf
    names = {n: v for n, v in _variables(like).items()
             if n.startswith("LeNet/") and "Momentum" not in n}
    with tf.Graph().as_default():
        variables = [tf.Variable(np.zeros_like(v), name=n) for n, v in names.items()]
        with tf.Session() as sess:
            sess.run(tf.variables_initializer(variables))
            tf.train.Saver(variables).save(sess, prefix, write_meta_graph=False,
                                           write_state=False)
    return sorted(names)


def test_finetune_with_model_dir_and_train_dir_only_on_rank0_host(cluster, runs, digits4):
    pretrained, train_dir, data = (os.path.join(LOCAL, d) for d in ("pretrained", "ft", "digits"))
    # The starting checkpoint is on h1's disk alone; the data is copied onto every host's disk.
    names = _write_zero_checkpoint(os.path.join(runs["two"], "model.ckpt-6"),
                                   os.path.join(cluster.on_host("h1", pretrained), "zeros.ckpt"))
    assert len(names) == 8
    for host in ("h1", "h2"):
        shutil.copytree(digits4, cluster.on_host(host, data))
    proc = cluster.horovodrun("h1:2,h2:2", [
        TRAINER, "--task_type=finetune", "--model_dir=" + pretrained,
        "--ckpt_file_name=zeros.ckpt", "--train_dir=" + train_dir, "--dataset_dir=" + data,
        "--stop_at_step=2"] + LENET)
    # From all-zero weights every activation is zero, so every gradient but that of the last
    # biases is zero on a worker that holds them: the weights stay zero only if rank 0's restored
    # checkpoint reached every worker, those on h2 included (a worker with other weights would
    # send non-zero gradients into the average).
    tuned = _variables(os.path.join(cluster.on_host("h1", train_dir), "model.ckpt-2"))
    for name in names:
        if name == "LeNet/fc4/biases":
            assert np.any(tuned[name] != 0)  # it trained
        else:
            assert not np.any(tuned[name]), name
    assert os.path.exists(os.path.join(cluster.on_host("h1", train_dir), "model.ckpt-2.index"))
    assert not os.path.exists(cluster.on_host("h2", pretrained))
    assert not os.path.exists(cluster.on_host("h2", train_dir))
