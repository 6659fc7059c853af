"""Which host each worker runs on, and which hosts still answer: the facts a lost-host message needs.

When a machine of a multi-host job dies or its link goes down, the survivors only see a Gloo
timeout ("Timed out waiting 30000ms for recv operation"), which names no peer, and horovodrun
reports the first *surviving* worker that gave up.  So every worker learns at start-up where all
ranks run (:func:`gather`, through horovodrun's rendezvous server, while every host is still
there), and after a failure asks each other host whether it still answers on the network
(:func:`silent_hosts`).
"""
import concurrent.futures
import dataclasses
import errno
import http.client
import os
import socket
import time
from typing import Dict, Optional, Sequence, Tuple

SCOPE = "fastnn_hosts"   # an ad-hoc scope of horovodrun's rendezvous key-value store
PROBE_PORT = 22          # horovodrun reaches remote hosts through ssh, so their sshd listens here
PROBE_TIMEOUT = 3.0


@dataclasses.dataclass(frozen=True)
class Host:
    """One machine of the job."""
    name: str
    address: str
    ranks: Tuple[int, ...]

    def describe(self):
        """``h2 (ranks 2-3, 10.0.0.12)``."""
        return "%s (%s, %s)" % (self.name, describe_ranks(self.ranks), self.address or "?")


def describe_ranks(ranks):
    """``rank 3``, ``ranks 2-3`` or ``ranks 0, 2, 5``."""
    ranks = sorted(ranks)
    if len(ranks) == 1:
        return "rank %d" % ranks[0]
    if ranks == list(range(ranks[0], ranks[-1] + 1)):
        return "ranks %d-%d" % (ranks[0], ranks[-1])
    return "ranks " + ", ".join(str(r) for r in ranks)


def interface_address(iface):
    """The IPv4 address of network interface ``iface`` on this machine, or None."""
    if not iface:
        return None
    try:
        import psutil  # a dependency of Horovod
    except ImportError:
        return None
    for addr in psutil.net_if_addrs().get(iface, ()):
        if addr.family == socket.AF_INET:
            return addr.address
    return None


def this_host(environ=None):
    """``(name, address)`` of this worker's machine as horovodrun sees it.

    The name is the one given to ``horovodrun -H`` (``HOROVOD_HOSTNAME``); the address is that of
    the interface Gloo uses (``--network-interface``), else what the name resolves to.
    """
    environ = os.environ if environ is None else environ
    name = environ.get("HOROVOD_HOSTNAME") or socket.gethostname()
    address = interface_address(environ.get("HOROVOD_GLOO_IFACE"))
    if address is None:
        try:
            address = socket.gethostbyname(name)
        except OSError:
            address = ""
    return name, address


class _Store:
    """horovodrun's rendezvous key-value store (HTTP PUT/GET of /scope/key)."""

    def __init__(self, addr, port):
        self.addr, self.port = addr, int(port)

    def _request(self, method, key, body=None):
        conn = http.client.HTTPConnection(self.addr, self.port, timeout=5)
        try:
            conn.request(method, "/%s/%s" % (SCOPE, key), body=body)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def put(self, key, value):
        self._request("PUT", key, value.encode("utf-8"))

    def wait_get(self, key, deadline):
        while True:
            status, data = self._request("GET", key)
            if status == 200:
                return data.decode("utf-8")
            if time.time() > deadline:
                raise TimeoutError("no %s/%s in the rendezvous store" % (SCOPE, key))
            time.sleep(0.05)


def gather(rank, size, environ=None, timeout=20.0):
    """``((name, address), ...)`` by rank, exchanged through horovodrun's rendezvous server.

    Every rank puts its own entry; rank 0 collects them into one table that all ranks read, so the
    server answers about 3 x size requests, not size^2.

    Args:
      rank, size: this worker's rank and the job's size.
      environ: the environment (default ``os.environ``), holding ``HOROVOD_GLOO_RENDEZVOUS_ADDR``
        and ``_PORT`` under ``horovodrun --gloo``.
      timeout: seconds to wait for the other ranks.

    Returns:
      The table, or ``()`` when there is no rendezvous server (another launcher) or it does not
      answer in time: failure messages then name ranks instead of hosts.
    """
    environ = os.environ if environ is None else environ
    addr = environ.get("HOROVOD_GLOO_RENDEZVOUS_ADDR")
    port = environ.get("HOROVOD_GLOO_RENDEZVOUS_PORT")
    if not addr or not port:
        return ()
    store = _Store(addr, port)
    deadline = time.time() + timeout
    try:
        store.put("rank-%d" % rank, "\t".join(this_host(environ)))
        if rank == 0:
            table = [store.wait_get("rank-%d" % r, deadline) for r in range(size)]
            store.put("all", "\n".join(table))
        rows = store.wait_get("all", deadline).split("\n")
    except (OSError, TimeoutError, http.client.HTTPException, ValueError):
        return ()
    result = []
    for row in rows:
        name, _, address = row.partition("\t")
        result.append((name, address))
    return tuple(result) if len(result) == size else ()


def by_host(hosts_by_rank):
    """Groups ``((name, address), ...)`` by rank into :class:`Host` records, in rank order."""
    groups: Dict[Tuple[str, str], list] = {}
    for rank, key in enumerate(hosts_by_rank):
        groups.setdefault(tuple(key), []).append(rank)
    return [Host(name, address, tuple(ranks)) for (name, address), ranks in groups.items()]


def answers(address, port=PROBE_PORT, timeout=PROBE_TIMEOUT):
    """True when the machine at ``address`` answers a TCP connection attempt.

    A connection accepted or refused both prove the machine is up and reachable; a time-out or
    "unreachable" means it is down or cut off (or a firewall drops the probe).
    """
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except ConnectionRefusedError:
        return True
    except OSError as e:
        if e.errno == errno.ECONNRESET:
            return True
        return False


def silent_hosts(hosts: Sequence[Host], own_address: Optional[str], port=PROBE_PORT,
                 timeout=PROBE_TIMEOUT):
    """The hosts among ``hosts`` (other than this one) that do not answer, probed in parallel.

    Returns:
      ``(silent, answering)``: two lists of :class:`Host`.
    """
    others = [h for h in hosts if h.address and h.address != own_address]
    if not others:
        return [], []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(32, len(others))) as pool:
        alive = list(pool.map(lambda h: answers(h.address, port, timeout), others))
    return ([h for h, ok in zip(others, alive) if not ok],
            [h for h, ok in zip(others, alive) if ok])
