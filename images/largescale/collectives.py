"""Collective operations of the sharded FC layer, with the gradients model parallelism needs.

Horovod's own ``allgather`` gradient *averages* the incoming gradients over the workers (since
Horovod 0.22), while a model-parallel layer needs their *sum*: every worker's shard contributes a
part of the gradient of every gathered row.  :meth:`Collectives.allgather_rows` therefore defines
its gradient itself.  With one worker every operation is the identity, so the same graph runs
without Horovod's background thread.
"""
import tensorflow.compat.v1 as tf


class Collectives:
    """Collectives over the workers of a :class:`images.utils.distributed.Cluster`."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.rank = cluster.rank
        self.size = cluster.size
        self._hvd = cluster.hvd if cluster.size > 1 else None

    @property
    def active(self):
        """True when there is more than one worker."""
        return self._hvd is not None

    def allgather_rows(self, x, name="allgather_rows"):
        """Concatenates every worker's ``x`` along axis 0 (rank order; row counts may differ).

        The gradient reaching ``x`` is the allreduce-SUM of the gradient of the gathered tensor,
        sliced to this worker's rows.
        """
        if not self.active:
            return tf.identity(x, name=name)
        hvd, rank = self._hvd, self.rank

        @tf.custom_gradient
        def gather(local):
            gathered = hvd.allgather(local, name=name)
            rows = tf.shape(local)[:1]

            def grad(upstream):
                sizes = hvd.allgather(rows, name=name + "_rows")
                offset = tf.reduce_sum(sizes[:rank])
                total = hvd.allreduce(upstream, op=hvd.Sum, name=name + "_grad")
                return total[offset:offset + rows[0]]

            return gathered, grad

        return gather(x)

    def allgather_labels(self, labels, name="allgather_labels"):
        """Concatenates every worker's integer ``labels`` (no gradient)."""
        if not self.active:
            return tf.identity(labels, name=name)
        return self._hvd.allgather(labels, name=name)

    def allreduce_sum(self, x, name="allreduce_sum"):
        """Sum over workers; no gradient flows through it (callers define their own)."""
        if not self.active:
            return tf.identity(x, name=name)
        return self._hvd.allreduce(tf.stop_gradient(x), op=self._hvd.Sum, name=name)

    def allreduce_max(self, x, name="allreduce_max"):
        """Element-wise maximum over workers; no gradient."""
        if not self.active:
            return tf.identity(x, name=name)
        return self._hvd.allreduce(tf.stop_gradient(x), op=self._hvd.Max, name=name)

    def allreduce_sum_grad(self, x, name="allreduce_grad"):
        """Sum over workers of a gradient tensor (dense or IndexedSlices)."""
        if not self.active:
            return x
        return self._hvd.allreduce(x, op=self._hvd.Sum, name=name)

    def allreduce_mean_grad(self, x, name="allreduce_grad"):
        """Mean over workers of a gradient tensor (data-parallel variables of non-dist losses)."""
        if not self.active:
            return x
        return self._hvd.allreduce(x, op=self._hvd.Average, name=name)

    def make_barrier(self, name="barrier"):
        """Returns ``barrier(session)``, which returns only when every worker has called it.

        The allreduce reads a fed placeholder: on a constant, Grappler would fold the collective
        away once and later runs would not wait.
        """
        if not self.active:
            return lambda session: None
        token = tf.placeholder(tf.float32, [], name=name + "_token")
        op = self._hvd.allreduce(token, op=self._hvd.Sum, name=name)
        return lambda session: session.run(op, {token: 1.0})


def agree(cluster, value, op="min"):
    """The ``min`` / ``max`` / ``sum`` of a number over the workers, before any graph exists
    (a one-op graph and session of its own); ``value`` itself with one worker."""
    if cluster.size <= 1:
        return value
    hvd = cluster.hvd
    ops = {"min": hvd.Min, "max": hvd.Max, "sum": hvd.Sum}
    with tf.Graph().as_default():
        feed = tf.placeholder(tf.float64, [])
        reduced = hvd.allreduce(feed, op=ops[op], name="agree_" + op)
        with tf.Session() as sess:
            return type(value)(sess.run(reduced, {feed: float(value)}))
