"""A host lost in the middle of a two-host job (issue 16): the job ends, non-zero, in bounded time,
and the surviving workers name the host.

``scripts/testcluster.sh kill h2`` powers h2 off (its link goes down, then every process on it is
killed, so no FIN or RST reaches the others); ``cut h2`` only sets its link down, its workers
keep running.  Either way the workers on h1 hear nothing more: Gloo's timeout
(HOROVOD_GLOO_TIMEOUT_SECONDS, 15 here) ends their collective, they probe h2, name it and exit 1,
and horovodrun stops the rest.  Each test makes the cluster afresh afterwards.
"""
import re
import subprocess
import time

import pytest

from cluster_helpers import TRAINER

# Also the start-up rendezvous bound: the workers of both hosts must reach hvd.init() within it.
GLOO_TIMEOUT = 15
BOUND = GLOO_TIMEOUT + 45   # the probe (3 s), horovodrun's SIGTERM/SIGKILL (5 s), a loaded machine
LENET = ["--model_name=lenet", "--dataset_name=digits", "--batch_size=4",
         "--optimizer=momentum", "--learning_rate=0.01", "--log_loss_every_n_iters=5",
         "--stop_at_step=1000000", "--save_checkpoints_steps=1000000", "--random_seed=3"]


def _lose_h2(cluster, digits4, tmp_path, how):
    launch = cluster.launch("h1:2,h2:2", [TRAINER, "--train_dir=" + str(tmp_path / "train"),
                                          "--dataset_dir=" + digits4] + LENET,
                            env={"HOROVOD_GLOO_TIMEOUT_SECONDS": str(GLOO_TIMEOUT)})
    try:
        # Both hosts' workers are in the training loop.
        assert launch.wait_for(r"\[rank 3\] INFO step=\d+", 300), launch.output[-3000:]
        assert launch.wait_for(r"\[rank 0\] INFO step=\d+", 60), launch.output[-3000:]
        cluster.script(how, "h2")
        start = time.time()
        try:
            code = launch.proc.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail("the job still ran %d s after `%s h2`:\n%s"
                        % (BOUND, how, launch.output[-3000:]))
        return code, time.time() - start, launch.output
    finally:
        launch.close()
        cluster.up()  # h2 afresh (its sshd is gone after a kill; its workers may linger)


@pytest.mark.parametrize("how", ["kill", "cut"])
def test_lost_host_ends_the_job_naming_the_host(cluster, digits4, tmp_path, how):
    code, elapsed, out = _lose_h2(cluster, digits4, tmp_path, how)
    assert code != 0, out[-3000:]
    assert elapsed < BOUND
    # The survivors on h1 say which host went and why they stop.  The first of them to exit is
    # the one horovodrun reports (it then stops the other, perhaps before it logs).
    named = [rank for rank in (0, 1) if re.search(
        r"\[rank %d\] ERROR worker %d of 4 on h1: a collective with the other workers failed: "
        r"lost host h2 \(ranks 2-3, 10\.\d+\.\d+\.12\), which no longer answers on the network"
        % (rank, rank), out)]
    first = re.search(r"The first process to do so was:\s*Process name: (\d+)", out)
    assert named and first and int(first.group(1)) in named, out[-4000:]
