"""The test cluster (two hosts, h1 and h2) shared by the multi-host tests, and their data.

`make test-cluster` runs this directory; `make test` does not collect it (pyproject.toml's
norecursedirs), since it needs root and builds hosts.  Without root every test here is skipped
with the reason.
"""
import pytest

from cluster_helpers import HostCluster, cannot_make_namespaces


@pytest.fixture(scope="session")
def cluster():
    """Hosts h1 and h2 (scripts/testcluster.sh up 2), torn down at the end, also on failure."""
    reason = cannot_make_namespaces()
    if reason:
        pytest.skip(reason)
    c = HostCluster(2)
    try:
        c.up()
        yield c
    finally:
        c.down()


@pytest.fixture(scope="session")
def digits4(tmp_path_factory):
    """The digits in four training files (one per worker) on the shared file system."""
    from images.datasets import convert_digits
    path = str(tmp_path_factory.mktemp("digits4"))
    convert_digits.run(path, num_shards=4)
    return path
