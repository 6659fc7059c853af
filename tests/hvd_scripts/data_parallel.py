"""Data-parallel checks run by tests/test_distributed.py under ``horovodrun -np 2 --gloo``.

    horovodrun -np 2 -H localhost:2 --gloo python tests/hvd_scripts/data_parallel.py OUT_DIR

Each rank writes ``OUT_DIR/<check>.rank<r>.npz``; rank 0 also writes the single-worker references.
The test compares them.  Checks:

* ``equivalence``: lenet (no batch norm, no dropout) trained 3 steps by two workers on batches of
  B, with the trainer's optimizer stack (static loss scale, clipping by global norm, momentum,
  Horovod average), against one worker on the concatenated 2B batches from the same initial
  weights.  Rank 1 starts from other random weights, so the broadcast is exercised too.
* ``accumulation``: the same with ``backward_passes_per_step=2`` against one worker taking one
  step on all four batches.
* ``dynamic``: dynamic loss scaling where rank 1's gradient is made infinite at step 2: both
  workers must skip that update (weights and momentum unchanged), halve the scale, then grow it
  back after ``growth_steps`` clean steps.
* ``adasum``: refused under Gloo with a clear message.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

import images  # noqa: E402,F401  (compat shim)
from images import training  # noqa: E402
from images.models import model_factory  # noqa: E402
from images.utils import distributed, losses, precision  # noqa: E402

B = 4            # examples per worker per step
STEPS = 3
CLIP = 0.5       # smaller than the gradients' global norm here, so clipping acts
LOSS_SCALE = 64.0
NUM_CLASSES = 10


def batches(num_steps, rows, seed=0):
    """Deterministic (images, labels) per step, identical in every process."""
    rng = np.random.RandomState(seed)
    return [(rng.uniform(-1, 1, (rows, 28, 28, 1)).astype(np.float32),
             rng.randint(0, NUM_CLASSES, rows).astype(np.int64)) for _ in range(num_steps)]


class LenetStep:
    """lenet + the trainer's loss and optimizer stack, fed through placeholders."""

    def __init__(self, cluster, loss_scale, clip, backward_passes=1, seed=0):
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.set_random_seed(seed)
            self.images = tf.placeholder(tf.float32, [None, 28, 28, 1])
            self.labels = tf.placeholder(tf.int64, [None])
            self.global_step = tf.train.get_or_create_global_step()
            net = model_factory.get_network_fn("lenet", NUM_CLASSES, weight_decay=1e-3,
                                               is_training=True, dropout_keep_prob=1.0)
            logits, _, _ = training.build_network(net, self.images)
            self.loss, _ = losses.classification_loss(logits, self.labels, NUM_CLASSES)
            self.base = tf.train.MomentumOptimizer(0.05, 0.9)
            opt = precision.GradientPolicyOptimizer(self.base, loss_scale, max_gradient_norm=clip)
            opt = distributed.distributed_optimizer(cluster, opt,
                                                    backward_passes_per_step=backward_passes)
            self.train_op = training.build_train_op(opt, self.loss, self.global_step)
            self.weights = tf.trainable_variables()
            self.slots = [self.base.get_slot(v, "momentum") for v in self.weights]
            self.grad_norm = tf.global_norm(tf.gradients(self.loss, self.weights))
            # Horovod's gradient-accumulation buffers are local variables.
            self.init = tf.group(tf.global_variables_initializer(),
                                 tf.local_variables_initializer())
            self.bcast = (cluster.hvd.broadcast_global_variables(0) if cluster.distributed
                          else None)
            self.assign_ph = [tf.placeholder(v.dtype.base_dtype, v.shape) for v in self.weights]
            self.assign = [v.assign(p) for v, p in zip(self.weights, self.assign_ph)]
        self.sess = tf.Session(graph=self.graph, config=tf.ConfigProto(
            intra_op_parallelism_threads=1, inter_op_parallelism_threads=1))
        self.sess.run(self.init)
        if self.bcast is not None:
            self.sess.run(self.bcast)

    def values(self):
        return self.sess.run(self.weights)

    def set_weights(self, values):
        self.sess.run(self.assign, dict(zip(self.assign_ph, values)))

    def step(self, images, labels):
        feed = {self.images: images, self.labels: labels}
        norm = self.sess.run(self.grad_norm, feed)
        self.sess.run(self.train_op, feed)
        return norm


def save(out_dir, name, weights=(), **arrays):
    """``weights`` go in as ``w0, w1, ...`` (trainable-variable order), beside ``arrays``."""
    arrays.update({"w%d" % i: w for i, w in enumerate(weights)})
    np.savez(os.path.join(out_dir, name + ".npz"), **arrays)


def check_equivalence(cluster, out_dir):
    scale = precision.LossScaleConfig.parse(LOSS_SCALE)
    model = LenetStep(cluster, scale, CLIP, seed=cluster.rank)
    initial = model.values()
    data = batches(STEPS, 2 * B)
    norms = [model.step(x[cluster.rank * B:(cluster.rank + 1) * B],
                        y[cluster.rank * B:(cluster.rank + 1) * B]) for x, y in data]
    save(out_dir, "equivalence.rank%d" % cluster.rank, model.values(),
         step=model.sess.run(model.global_step))
    if cluster.rank == 0:
        ref = LenetStep(distributed.Cluster(), scale, CLIP, seed=7)
        ref.set_weights(initial)
        ref_norms = [ref.step(x, y) for x, y in data]
        save(out_dir, "equivalence.reference", ref.values(), norms=np.array(ref_norms),
             local_norms=np.array(norms))


def check_accumulation(cluster, out_dir):
    scale = precision.LossScaleConfig()
    model = LenetStep(cluster, scale, None, backward_passes=2, seed=cluster.rank)
    initial = model.values()
    data = batches(2, 2 * B, seed=1)
    for x, y in data:  # two backward passes, one update
        model.step(x[cluster.rank * B:(cluster.rank + 1) * B],
                   y[cluster.rank * B:(cluster.rank + 1) * B])
    save(out_dir, "accumulation.rank%d" % cluster.rank, model.values(),
         step=model.sess.run(model.global_step))
    if cluster.rank == 0:
        ref = LenetStep(distributed.Cluster(), scale, None, seed=7)
        ref.set_weights(initial)
        ref.step(np.concatenate([d[0] for d in data]), np.concatenate([d[1] for d in data]))
        save(out_dir, "accumulation.reference", ref.values())


@tf.custom_gradient
def _gradient_gate(x, factor):
    """Identity forward; the backward gradient times ``factor`` (inf simulates an overflow)."""
    def grad(dy):
        return dy * factor, tf.zeros_like(factor)
    return tf.identity(x), grad


def check_dynamic(cluster, out_dir, growth_steps=2, poisoned_step=2, steps=5):
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(cluster.rank)
        x = tf.constant(np.random.RandomState(cluster.rank).normal(size=(B, 6)), tf.float32)
        factor = tf.placeholder(tf.float32, [])
        w = tf.get_variable("w", [6, 3])
        hidden = _gradient_gate(tf.matmul(x, w), factor)
        loss = tf.reduce_mean(tf.square(hidden - 1.0))
        global_step = tf.train.get_or_create_global_step()
        base = tf.train.MomentumOptimizer(0.1, 0.9)
        opt = precision.GradientPolicyOptimizer(
            base, precision.LossScaleConfig("dynamic", 1024.0, growth_steps, 1024.0))
        opt = distributed.distributed_optimizer(cluster, opt)
        train_op = training.build_train_op(opt, loss, global_step)
        slot = base.get_slot(w, "momentum")
        scale = [v for v in tf.global_variables() if v.op.name == "loss_scale/scale"][0]
        init = tf.global_variables_initializer()
        bcast = cluster.hvd.broadcast_global_variables(0)
    record = {"w": [], "slot": [], "scale": [], "step": []}
    with tf.Session(graph=graph) as sess:
        sess.run(init)
        sess.run(bcast)
        for i in range(steps + 1):
            w_val, slot_val, scale_val, step_val = sess.run([w, slot, scale, global_step])
            for key, val in zip(("w", "slot", "scale", "step"),
                                (w_val, slot_val, scale_val, step_val)):
                record[key].append(val)
            if i == steps:
                break
            poisoned = (i + 1 == poisoned_step) and cluster.rank == 1
            sess.run(train_op, {factor: np.inf if poisoned else 1.0})
    save(out_dir, "dynamic.rank%d" % cluster.rank, **{k: np.array(v) for k, v in record.items()})


def check_adasum_refused(cluster, out_dir):
    with tf.Graph().as_default():
        try:
            distributed.distributed_optimizer(cluster, tf.train.GradientDescentOptimizer(0.1),
                                              op="adasum")
            message = ""
        except ValueError as e:
            message = str(e)
    with open(os.path.join(out_dir, "adasum.rank%d.txt" % cluster.rank), "w") as f:
        f.write(message)


def main(out_dir):
    cluster = distributed.init_cluster(True)
    assert cluster.size == 2, "run under horovodrun -np 2"
    check_equivalence(cluster, out_dir)
    check_accumulation(cluster, out_dir)
    check_dynamic(cluster, out_dir)
    check_adasum_refused(cluster, out_dir)
    print("rank %d done" % cluster.rank, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
