"""Where each worker runs and which hosts answer: the lost-host message (issue 16).

The live cases (a host killed or cut off in a two-host job) are in tests/cluster/; these run
anywhere: the rank table through a real horovodrun rendezvous server, the probe against loopback
sockets, and the message for each outcome.
"""
import socket
import threading

from images.utils import distributed, hosts


def test_rank_table_goes_through_the_rendezvous_server():
    from horovod.runner.http.http_server import RendezvousServer
    server = RendezvousServer()
    port = server.start()
    try:
        table = [None] * 3
        envs = [{"HOROVOD_GLOO_RENDEZVOUS_ADDR": "127.0.0.1",
                 "HOROVOD_GLOO_RENDEZVOUS_PORT": str(port),
                 "HOROVOD_HOSTNAME": name} for name in ("a", "a", "b")]

        def run(rank):
            table[rank] = hosts.gather(rank, 3, environ=envs[rank], timeout=30)
        threads = [threading.Thread(target=run, args=(r,)) for r in (2, 1, 0)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.stop()
    assert table[0] == table[1] == table[2]
    assert [name for name, _ in table[0]] == ["a", "a", "b"]
    assert [h.ranks for h in hosts.by_host(table[0])] == [(0, 1), (2,)]


def test_no_rendezvous_server_means_no_table():
    assert hosts.gather(0, 2, environ={}) == ()
    # A server that is gone: the ranks go on without host names instead of failing.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert hosts.gather(0, 2, environ={"HOROVOD_GLOO_RENDEZVOUS_ADDR": "127.0.0.1",
                                       "HOROVOD_GLOO_RENDEZVOUS_PORT": str(port)},
                        timeout=1) == ()


def test_probe_tells_answering_from_silent_hosts():
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))  # bound, not listening: the kernel refuses
        assert hosts.answers("127.0.0.1", listening.getsockname()[1], timeout=2)
        assert hosts.answers("127.0.0.1", closed.getsockname()[1], timeout=2)
    # A machine that is gone answers nothing; so does a listening socket whose accept queue is
    # full (the kernel drops further SYNs): the probe times out.
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        address = full.getsockname()
        waiting = []
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(address)
            waiting.append(c)
        try:
            assert not hosts.answers(*address, timeout=0.5)
        finally:
            for c in waiting:
                c.close()
    group = [hosts.Host("h1", "127.0.0.1", (0, 1)), hosts.Host("h2", "127.0.0.2", (2, 3))]
    silent, answering = hosts.silent_hosts(group, "127.0.0.1", port=9, timeout=2)
    assert silent == [] and [h.name for h in answering] == ["h2"]  # its own host is not probed


def test_describe_ranks():
    assert hosts.describe_ranks([3]) == "rank 3"
    assert hosts.describe_ranks([3, 2]) == "ranks 2-3"
    assert hosts.describe_ranks([0, 2, 5]) == "ranks 0, 2, 5"
    assert hosts.Host("h2", "10.0.0.12", (2, 3)).describe() == "h2 (ranks 2-3, 10.0.0.12)"


def _shutdown_error():
    import tensorflow.compat.v1 as tf
    return tf.errors.UnknownError(None, None, "Graph execution error:\n\nHorovod has been shut "
                                  "down. This was caused by an exception on one of the ranks")


TWO_HOSTS = (("h1", "10.0.0.11"), ("h1", "10.0.0.11"), ("h2", "10.0.0.12"), ("h2", "10.0.0.12"))


def test_lost_host_message_names_the_silent_host():
    cluster = distributed.Cluster(rank=1, size=4, hvd=object(), hosts=TWO_HOSTS)
    asked = []

    def probe(groups, own):
        asked.append(([g.name for g in groups], own))
        return [g for g in groups if g.name == "h2"], []
    message = distributed.lost_worker_message(cluster, _shutdown_error(), probe=probe)
    assert asked == [(["h1", "h2"], "10.0.0.11")]
    assert message.startswith("worker 1 of 4 on h1: a collective with the other workers failed: "
                              "lost host h2 (ranks 2-3, 10.0.0.12), which no longer answers")
    assert "restart the job once h2 is back" in message
    assert "Horovod has been shut down" in message


def test_lost_worker_message_when_every_host_answers_places_the_ranks():
    cluster = distributed.Cluster(rank=0, size=4, hvd=object(), hosts=TWO_HOSTS)
    message = distributed.lost_worker_message(
        cluster, _shutdown_error(), probe=lambda groups, own: ([], list(groups[1:])))
    assert "every host still answers" in message
    assert "hosts: h1 (ranks 0-1, 10.0.0.11), h2 (ranks 2-3, 10.0.0.12)" in message
    assert "HOROVOD_GLOO_TIMEOUT_SECONDS" in message


def test_one_host_message_does_not_probe():
    cluster = distributed.Cluster(rank=0, size=2, hvd=object(),
                                  hosts=(("localhost", "127.0.0.1"),) * 2)

    def probe(groups, own):
        raise AssertionError("probed a one-host job")
    message = distributed.lost_worker_message(cluster, _shutdown_error(), probe=probe)
    assert message.startswith("worker 0 of 2: a collective with the other workers failed, so")


def test_two_lost_hosts_are_both_named():
    cluster = distributed.Cluster(rank=0, size=3, hvd=object(),
                                  hosts=(("a", "10.0.0.1"), ("b", "10.0.0.2"), ("c", "10.0.0.3")))
    message = distributed.lost_worker_message(
        cluster, _shutdown_error(), probe=lambda groups, own: (list(groups[1:]), []))
    assert ("lost hosts b (rank 1, 10.0.0.2), c (rank 2, 10.0.0.3), which no longer answer on "
            "the network (no reply within 3 s: they died, or their links are down)") in message
    assert "restart the job once b and c are back, or with -H without them" in message
