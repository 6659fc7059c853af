"""The large-scale Entry (dist_softmax, Partial FC) across two hosts, re-sharded 4 -> 2 x 1.

Two launches: ``horovodrun -np 4 -H h1:2,h2:2`` trains, then ``horovodrun -np 2 -H h1:1,h2:1``
loads the 4-worker checkpoint (re-sharding it) and trains on (tests/cluster/entry_job.py).
"""
import json
import os

import numpy as np
import pytest

from cluster_helpers import HERE

JOB = os.path.join(HERE, "entry_job.py")


@pytest.fixture(scope="module")
def entry_runs(cluster, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("entry"))  # shared file system: every worker saves there
    four = cluster.horovodrun("h1:2,h2:2", [JOB, "four", out], timeout=600)
    two = cluster.horovodrun("h1:1,h2:1", [JOB, "two", out], timeout=600)

    def load(phase, size):
        return ([json.load(open(os.path.join(out, "info-%s-%d.json" % (phase, r))))
                 for r in range(size)],
                [dict(np.load(os.path.join(out, "vars-%s-%d.npz" % (phase, r))))
                 for r in range(size)])
    return dict(four=four, two=two, load=load)


def _by_start(infos, values, name):
    """The shard array ``name`` of all ranks, concatenated in class order."""
    order = sorted(range(len(infos)), key=lambda r: infos[r]["start"])
    return np.concatenate([values[r][name] for r in order])


def test_dist_softmax_with_partial_fc_trains_across_hosts(entry_runs):
    infos, values = entry_runs["load"]("four", 4)
    assert [i["host"] for i in infos] == ["h1", "h1", "h2", "h2"]
    assert all(i["step"] == 4 and i["size"] == 4 for i in infos)
    assert "Partial FC" in entry_runs["four"].stderr
    # 10 classes over 4 workers: shards of 3, 3, 2, 2, one per worker.
    assert [(i["start"], i["num_local"]) for i in infos] == [(0, 3), (3, 3), (6, 2), (8, 2)]
    shard_names = set(infos[0]["shard_arrays"])
    assert shard_names and all(set(i["shard_arrays"]) == shard_names for i in infos)
    for name in values[0]:
        if name in shard_names:
            # Each worker keeps its own rows; they are never averaged or broadcast.
            assert [v[name].shape[0] for v in values] == [3, 3, 2, 2], name
            assert all(np.isfinite(v[name]).all() for v in values)
        else:
            # The backbone is data parallel: the same on both hosts, bit for bit.
            for v in values[1:]:
                assert v[name].tobytes() == values[0][name].tobytes(), name


def test_four_worker_checkpoint_reshards_to_two_hosts_of_one(entry_runs):
    out = entry_runs["two"].stdout + entry_runs["two"].stderr
    assert "re-sharded" in out and "from 4 to 2" in out, out[-3000:]
    infos4, values4 = entry_runs["load"]("four", 4)
    infos2, values2 = entry_runs["load"]("loaded", 2)
    assert [i["host"] for i in infos2] == ["h1", "h2"]
    assert [(i["start"], i["num_local"]) for i in infos2] == [(0, 5), (5, 5)]
    assert all(i["step"] == 4 for i in infos2)
    shard_names = set(infos4[0]["shard_arrays"])
    for name in values4[0]:
        if name in shard_names:
            # The same class rows, now split in two: exact, not approximately.
            assert (_by_start(infos2, values2, name).tobytes()
                    == _by_start(infos4, values4, name).tobytes()), name
        else:
            for v in values2:
                assert v[name].tobytes() == values4[0][name].tobytes(), name


def test_two_hosts_train_on_from_the_resharded_checkpoint(entry_runs):
    infos2, loaded = entry_runs["load"]("loaded", 2)
    infos, values = entry_runs["load"]("two", 2)
    assert all(i["step"] == 6 for i in infos)
    shard_names = set(infos[0]["shard_arrays"])
    for name in values[0]:
        if name not in shard_names:
            assert values[1][name].tobytes() == values[0][name].tobytes(), name
    moved = [name for name in shard_names
             if not np.array_equal(_by_start(infos, values, name),
                                   _by_start(infos2, loaded, name))]
    assert moved, "two more steps changed no class centre"
