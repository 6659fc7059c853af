"""The sharded FC layer and its softmax cross-entropy across workers (PLSC's dist_* losses).

With N workers, a local batch B and a global batch G (the sum of the local batches):

1. the features are gathered from every worker (``X``: G x d) with a gradient that sums what
   every shard sends back (:meth:`Collectives.allgather_rows`), and so are the labels;
2. worker r computes logits only for its classes ``[start, start + num_local)``
   (:func:`images.largescale.sharding.shard_range`): ``X W_r^T + b_r`` for softmax, or
   ``s * cos`` with the margin applied to the target entry on the shard that owns the label;
3. the softmax is normalised across workers with an allreduce of the row maxima and of the row
   sums of exponentials; each row's loss lives on the shard that owns its label, and the loss is
   their sum over the global batch divided by G (the same scalar on every worker);
4. the gradient of the shard's logits is ``(p - onehot) / G``, defined directly.

``W_r`` (and ``b_r``) are this worker's own: the training code never averages nor broadcasts
them.  With a whole-layer loss the same code runs with one shard per worker on the local batch.

Partial FC (``sample_ratio``): per step each shard keeps every class centre that is a positive of
the global batch plus a random sample of the others, ``int(sample_ratio * num_local)`` rows in all
(more when the positives alone are more); only those rows enter the forward pass, so only they,
and their optimizer slots, receive an update (the gradient is an ``IndexedSlices``).
"""
import dataclasses
import math
from typing import Any, List, Optional

import tensorflow.compat.v1 as tf

from images.largescale import sharding
from images.largescale.losses import LossSpec, Margin

SHARD_COLLECTION = "largescale_shard_variables"

# Target cosines are kept this far inside [-1, 1] before the angle is taken: d(arccos)/dt is
# infinite at the ends.
_COS_EPS = 1e-6


@dataclasses.dataclass
class FCResult:
    """What :func:`build_fc_loss` returns.

    Attributes:
      loss: the data term (mean over the global batch), identical on every worker.
      accuracy: top-1 accuracy over the global batch from the logits without margin (over the
        sampled classes with Partial FC), or None when not asked for.
      accuracy5: top-5 accuracy likewise (PLSC's acc5), or None.
      reg_loss: value of the L2 term of this worker's FC rows (sampled rows only with Partial
        FC), for the logged loss.  Its gradient is not taken from this tensor but added inside
        the gradient of the rows (see ``_with_weight_decay``).
      weights: the shard's class centres, ``[num_local, emb]``, class-major.
      bias: ``[num_local]`` for softmax, else None.
      start: first class id of the shard.
      num_local: classes in the shard.
      num_shards: shards the layer is split into (1 for a whole-layer loss).
      sampled_index: the shard rows used this step (Partial FC) or None.
      shard_variables: the variables that must stay local (empty for whole-layer losses).
      logits: the shard's logits after the margin (``[G, rows used]``).
    """
    loss: Any
    accuracy: Any
    reg_loss: Any
    weights: Any
    bias: Any
    start: int
    num_local: int
    num_shards: int
    sampled_index: Any = None
    shard_variables: List[Any] = dataclasses.field(default_factory=list)
    logits: Any = None
    accuracy5: Any = None


def margin_target(cos_t, margin: Margin):
    """The target logit before scaling: ``cos(m1 * theta + m2) - m3`` with the monotonic guard.

    Where ``m1 * theta + m2`` would pass pi (``theta > (pi - m2) / m1``) the cosine would turn
    back up and reward a worse angle; there the value continues instead as
    ``cos - m2 * sin(pi - m2)`` (insightface's ArcFace guard, for ``m1 == 1``) or as the shifted
    cosine that joins the curve continuously (``m1 != 1``).  ``easy_margin`` applies the margin
    only where the cosine is positive.
    """
    m1, m2, m3 = float(margin.m1), float(margin.m2), float(margin.m3)
    if m1 == 1.0 and m2 == 0.0:
        phi = cos_t
    else:
        t = tf.clip_by_value(cos_t, -1.0 + _COS_EPS, 1.0 - _COS_EPS)
        if m1 == 1.0:
            phi = t * math.cos(m2) - tf.sqrt(1.0 - t * t) * math.sin(m2)
        else:
            phi = tf.cos(m1 * tf.acos(t) + m2)
        theta_max = (math.pi - m2) / m1
        if not margin.easy_margin and theta_max < math.pi:
            shift = m2 * math.sin(math.pi - m2) if m1 == 1.0 else 1.0 + math.cos(theta_max)
            phi = tf.where(cos_t > math.cos(theta_max), phi, cos_t - shift)
    if margin.easy_margin:
        return tf.where(cos_t > 0.0, phi - m3, cos_t)
    return phi - m3


def sharded_softmax_cross_entropy(logits, local_labels, comm):
    """Mean softmax cross-entropy over the global batch of logits split by class over workers.

    Args:
      logits: ``[G, n]`` float32, this shard's columns.
      local_labels: int32 ``[G]``: the target's column in this shard, or -1 when another shard
        owns it.
      comm: :class:`images.largescale.collectives.Collectives`.

    Returns:
      The scalar loss, equal on every worker; its gradient with respect to ``logits`` is
      ``(softmax - onehot) / G`` for this shard's columns.
    """
    @tf.custom_gradient
    def xent(z, y):
        rows = tf.shape(z)[0]
        count = tf.cast(rows, tf.float32)
        row_max = comm.allreduce_max(tf.reduce_max(z, axis=1), name="dist_xent_max")
        row_sum = comm.allreduce_sum(tf.reduce_sum(tf.exp(z - row_max[:, None]), axis=1),
                                     name="dist_xent_sum")
        mine = tf.where(y >= 0)[:, 0]
        pairs = tf.stack([tf.cast(mine, tf.int32), tf.gather(y, mine)], axis=1)
        target = tf.gather_nd(z, pairs)
        row_loss = tf.log(tf.gather(row_sum, mine)) + tf.gather(row_max, mine) - target
        loss = comm.allreduce_sum(tf.reduce_sum(row_loss), name="dist_xent_loss") / count

        def grad(upstream):
            probs = tf.exp(z - row_max[:, None]) / row_sum[:, None]
            dz = tf.tensor_scatter_nd_sub(probs, pairs, tf.ones_like(target))
            return dz * (upstream / count), None

        return loss, grad

    return xent(logits, local_labels)


def sharded_accuracy(plain_logits, local_labels, comm):
    """Top-1 accuracy without gathering the logits: a row is right when its target logit (on
    the shard that owns it) reaches the maximum over all shards."""
    plain_logits = tf.stop_gradient(plain_logits)
    row_max = comm.allreduce_max(tf.reduce_max(plain_logits, axis=1), name="dist_acc_max")
    mine = tf.where(local_labels >= 0)[:, 0]
    pairs = tf.stack([tf.cast(mine, tf.int32), tf.gather(local_labels, mine)], axis=1)
    hits = tf.reduce_sum(tf.cast(tf.gather_nd(plain_logits, pairs) >= tf.gather(row_max, mine),
                                 tf.float32))
    total = tf.cast(tf.shape(plain_logits)[0], tf.float32)
    return comm.allreduce_sum(hits, name="dist_acc_hits") / total


def sharded_topk_accuracy(plain_logits, local_labels, comm, k=5):
    """Top-``k`` accuracy without gathering the logits: a row is right when fewer than ``k``
    logits of all shards exceed its target logit (``k`` = 1 is :func:`sharded_accuracy`)."""
    plain_logits = tf.stop_gradient(plain_logits)
    mine = local_labels >= 0
    rows = tf.range(tf.shape(plain_logits)[0])
    own = tf.gather_nd(plain_logits, tf.stack([rows, tf.maximum(local_labels, 0)], axis=1))
    # Exactly one shard owns each row's target: the sum over shards is that logit.
    target = comm.allreduce_sum(tf.where(mine, own, tf.zeros_like(own)),
                                name="dist_acc%d_target" % k)
    above = tf.reduce_sum(tf.cast(plain_logits > target[:, None], tf.float32), axis=1)
    above = comm.allreduce_sum(above, name="dist_acc%d_above" % k)
    return tf.reduce_mean(tf.cast(above < k, tf.float32))


def _sample_rows(local_labels, num_local, sample_ratio, seed):
    """Partial FC: sorted shard rows to use (all positives plus random others) and the labels
    re-indexed into them."""
    num_sample = max(1, int(sample_ratio * num_local))
    mine = tf.boolean_mask(local_labels, local_labels >= 0)
    positive = tf.scatter_nd(mine[:, None], tf.ones_like(mine, tf.float32), [num_local]) > 0
    # Positives score above every random draw in [0, 1), so top_k keeps them all.
    scores = tf.random.uniform([num_local], seed=seed) + 2.0 * tf.cast(positive, tf.float32)
    k = tf.maximum(num_sample, tf.reduce_sum(tf.cast(positive, tf.int32)))
    _, index = tf.math.top_k(scores, k=k, sorted=False)
    index = tf.sort(index)
    position = tf.scatter_nd(index[:, None], tf.range(1, k + 1), [num_local]) - 1
    remapped = tf.where(local_labels >= 0, tf.gather(position, tf.maximum(local_labels, 0)),
                        local_labels)
    return index, remapped


def _shard_initializer(shape, stddev, seed, rank, initializer=None):
    # A stateless draw keyed by (seed, rank): shards start different from each other and the
    # same on every run, whatever the graph-level seed.  (Written into the variable without a
    # copy when Grappler's constant folding is off, see trainer.large_layer_session_config;
    # partial writes, e.g. block by block, would switch the variable to copy-on-read and make
    # every dense read a full copy.)  ``initializer`` (set_distfc_attr): a standard deviation
    # for that draw, or ``fn(shape, dtype) -> tensor``.
    if callable(initializer):
        return tf.cast(initializer(shape, dtype=tf.float32), tf.float32)
    if initializer is not None:
        stddev = float(initializer)
    return tf.random.stateless_normal(shape, seed=[int(seed), int(rank)], stddev=stddev)


def _with_weight_decay(rows, weight_decay, loss_scale=None):
    """``rows`` whose gradient gains ``weight_decay * rows`` (times the loss scale).

    The same gradient as an L2 term ``wd * sum(rows^2) / 2`` in the loss, but TensorFlow would
    compute that term's gradient, a layer-sized tensor, at the start of the backward pass and
    keep it until the logits' gradient arrives; added here it exists only at the end, which
    saves one layer-sized buffer at the peak.  With loss scaling the incoming gradient is scaled
    and so must the decay be.
    """
    factor = float(weight_decay)

    @tf.custom_gradient
    def decayed(x):
        def grad(upstream):
            scale = factor if loss_scale is None else factor * tf.cast(loss_scale, x.dtype)
            return upstream + scale * x
        return tf.identity(x), grad

    return decayed(rows)


def build_fc_loss(features, labels, *, num_classes, loss_spec: LossSpec, comm,
                  margin: Optional[Margin] = None, sample_ratio=None, weight_decay=0.0,
                  init_stddev=0.01, seed=0, calc_acc=True, scope="dist_fc", loss_scale=None,
                  weights_initializer=None, bias_initializer=None):
    """Builds the (sharded) FC layer and its loss on this worker.

    Args:
      features: ``[B, emb]`` embeddings of the local batch (cast to float32).
      labels: int ``[B]`` class ids in ``[0, num_classes)``.
      num_classes: C, the total number of classes.
      loss_spec: from :func:`images.largescale.losses.get_loss`.
      comm: :class:`Collectives` over the workers; whole-layer losses ignore it.
      margin: margins and scale of a margin loss (defaults from ``loss_spec``).
      sample_ratio: Partial FC ratio in (0, 1]; None uses every row of the shard.
      weight_decay: L2 coefficient of the FC rows used this step (``wd * sum(w^2) / 2``).
      loss_scale: the optimizer's loss scale (a scalar tensor) when the loss is scaled before
        differentiation, so the weight decay is scaled alike; None without loss scaling.
      init_stddev: standard deviation of the initial class centres.
      weights_initializer: instead of that draw: a standard deviation, or
        ``fn(shape, dtype) -> tensor`` called with this shard's ``[num_local, emb]``.
      bias_initializer: the softmax bias's initial value (a number or ``fn(shape, dtype)``);
        zeros when None.
      seed: seed of the initial centres and of the Partial FC draw.
      calc_acc: also build the training accuracy.
      scope: variable scope of the layer.

    Returns:
      An :class:`FCResult`.
    """
    from images.largescale.collectives import Collectives
    from images.utils.distributed import Cluster

    if sample_ratio is not None and not 0.0 < float(sample_ratio) <= 1.0:
        raise ValueError("sample_ratio must be in (0, 1], got %r" % (sample_ratio,))
    if loss_spec.is_margin:
        margin = margin or Margin(*loss_spec.margins)
        margin.validate()
    elif margin is not None:
        raise ValueError("loss %s has no margin; margins apply to arcface/cosface/combined/"
                         "sphereface losses" % loss_spec.name)
    if not loss_spec.distributed:
        comm = Collectives(Cluster())  # whole layer on the local batch
    num_shards, rank = comm.size, comm.rank
    start, num_local = sharding.shard_range(num_classes, num_shards, rank)
    features = tf.cast(features, tf.float32)
    emb = features.shape[-1]
    if emb is None:
        raise ValueError("the embedding size of the features must be known statically")
    emb = int(emb)
    shard_vars = []
    with tf.variable_scope(scope):
        weights = tf.get_variable(
            "weights", initializer=_shard_initializer([num_local, emb], init_stddev, seed, rank,
                                                      weights_initializer),
            dtype=tf.float32)
        shard_vars.append(weights)
        bias = None
        if loss_spec.has_bias:
            if callable(bias_initializer):
                bias_init = tf.cast(bias_initializer([num_local], dtype=tf.float32), tf.float32)
            else:
                bias_init = tf.fill([num_local], float(bias_initializer or 0.0))
            bias = tf.get_variable("bias", initializer=bias_init, dtype=tf.float32)
            shard_vars.append(bias)
        if loss_spec.distributed:
            for v in shard_vars:
                tf.add_to_collection(SHARD_COLLECTION, v)

        gathered = comm.allgather_rows(features, name="gather_features")
        all_labels = comm.allgather_labels(tf.cast(labels, tf.int32), name="gather_labels")
        in_shard = (all_labels >= start) & (all_labels < start + num_local)
        local_labels = tf.where(in_shard, all_labels - start, -tf.ones_like(all_labels))

        sampled_index = None
        used_w, used_b = weights, bias
        if sample_ratio is not None:
            # The rank enters the seed so that shards draw independently.
            sampled_index, local_labels = _sample_rows(local_labels, num_local,
                                                       float(sample_ratio), seed * 7919 + rank)
            used_w = tf.gather(weights, sampled_index)
            used_b = None if bias is None else tf.gather(bias, sampled_index)

        reg_loss = tf.constant(0.0)
        if weight_decay:
            reg_loss = tf.stop_gradient(float(weight_decay) * tf.nn.l2_loss(used_w),
                                        name="fc_l2")
            used_w = _with_weight_decay(used_w, weight_decay, loss_scale)
        if loss_spec.is_margin:
            normed = tf.nn.l2_normalize(gathered, axis=1, epsilon=1e-12)
            # Scaling the columns by 1/|w| avoids materialising a normalised copy of the shard
            # (and EuclideanNorm, one kernel, a squared copy).
            inv_norm = 1.0 / tf.maximum(tf.math.reduce_euclidean_norm(used_w, axis=1), 1e-12)
            cos = tf.clip_by_value(tf.matmul(normed, used_w, transpose_b=True) * inv_norm,
                                   -1.0, 1.0)
            mine = tf.where(local_labels >= 0)[:, 0]
            pairs = tf.stack([tf.cast(mine, tf.int32), tf.gather(local_labels, mine)], axis=1)
            target = margin_target(tf.gather_nd(cos, pairs), margin)
            logits = margin.scale * tf.tensor_scatter_nd_update(cos, pairs, target)
            plain = margin.scale * cos
        else:
            logits = tf.matmul(gathered, used_w, transpose_b=True) + used_b
            plain = logits
        loss = sharded_softmax_cross_entropy(logits, local_labels, comm)
        accuracy = sharded_accuracy(plain, local_labels, comm) if calc_acc else None
        accuracy5 = sharded_topk_accuracy(plain, local_labels, comm, 5) if calc_acc else None
    return FCResult(loss=loss, accuracy=accuracy, reg_loss=reg_loss, weights=weights, bias=bias,
                    start=start, num_local=num_local, num_shards=num_shards,
                    sampled_index=sampled_index,
                    shard_variables=shard_vars if loss_spec.distributed else [], logits=logits,
                    accuracy5=accuracy5)
