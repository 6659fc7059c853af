"""Checks the sharded FC layer against the numpy float64 reference; run alone or under horovodrun.

Usage: python tests/largescale_scripts/check_layer.py OUT_DIR

Every worker writes ``OUT_DIR/layer-<rank>.json``: relative errors of the loss, the feature and
weight gradients and the accuracy for each loss, and the Partial FC findings.  The test reads the
files and asserts on them, so a failure names the check.  The class count (13) is not divisible
by 2 and the workers hold unequal local batches (5 and 3 rows).
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)

import images  # noqa: E402,F401
import tensorflow.compat.v1 as tf  # noqa: E402

import reference  # noqa: E402
from images.largescale import fc_layer, losses, sharding  # noqa: E402
from images.largescale.collectives import Collectives  # noqa: E402
from images.utils import distributed  # noqa: E402

C, D = 13, 8


def rel(a, ref):
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(a - ref)) / max(np.max(np.abs(ref)), 1e-12))


def global_data(sizes, num_classes=C):
    rng = np.random.RandomState(0)
    g = sum(sizes)
    w = rng.randn(num_classes, D)
    b = 0.1 * rng.randn(num_classes)
    y = rng.randint(0, num_classes, g)
    x = rng.randn(g, D)
    # Rows pointing away from their class centre reach the ArcFace guard (cos < cos(pi - m2)),
    # rows close to it have a large target cosine.
    x[0] = -w[y[0]] + 0.05 * rng.randn(D)
    x[g - 1] = 2.0 * w[y[g - 1]] + 0.3 * rng.randn(D)
    return x, w, b, y


def build(comm, name, x_local, y_local, w_full, b_full, sample_ratio=None, weight_decay=0.0,
          margin=None):
    spec = losses.get_loss(name)
    x = tf.constant(x_local.astype(np.float32))
    res = fc_layer.build_fc_loss(x, tf.constant(y_local), num_classes=len(w_full), loss_spec=spec,
                                 comm=comm, sample_ratio=sample_ratio, margin=margin,
                                 weight_decay=weight_decay)
    s, n = res.start, res.num_local
    assigns = [res.weights.assign(w_full[s:s + n].astype(np.float32))]
    if res.bias is not None:
        assigns.append(res.bias.assign(b_full[s:s + n].astype(np.float32)))
    return x, res, tf.group(*assigns)


def main(out_dir):
    cluster = distributed.init_cluster(True)
    comm = Collectives(cluster)
    sizes = [5, 3] if cluster.size == 2 else [8] * cluster.size
    offset = sum(sizes[:cluster.rank])
    x_all, w_all, b_all, y_all = global_data(sizes)
    rows = slice(offset, offset + sizes[cluster.rank])
    x_loc, y_loc = x_all[rows], y_all[rows]
    out = {"rank": cluster.rank, "size": cluster.size, "checks": {}}
    checks = out["checks"]

    cases = [("dist_softmax", None, 0.0), ("dist_arcface", None, 0.0),
             ("dist_cosface", None, 0.0), ("dist_combined", None, 0.0),
             ("dist_sphereface", None, 0.0),
             ("dist_arcface", losses.Margin(1.0, 0.5, 0.0, 30.0, True), 0.0),
             ("softmax", None, 0.0), ("arcface", None, 0.0), ("dist_arcface", None, 0.05)]
    for name, margin, wd in cases:
        key = name + ("_easy" if margin is not None else "") + ("_wd" if wd else "")
        spec = losses.get_loss(name)
        m = margin or (losses.Margin(*spec.margins) if spec.is_margin else None)
        kw = {} if m is None else dict(margins=(m.m1, m.m2, m.m3), scale=m.scale,
                                       easy_margin=m.easy_margin)
        bias = b_all if not spec.is_margin else None
        if spec.distributed:
            ref_x, ref_y = x_all, y_all
        else:  # whole layer: each worker's loss is over its own batch
            ref_x, ref_y = x_loc, y_loc
        ref_loss, ref_dx, ref_dw, ref_db = reference.loss_and_grads(ref_x, w_all, bias, ref_y,
                                                                    **kw)
        ref_acc = reference.accuracy(ref_x, w_all, bias, ref_y,
                                     margins=kw.get("margins"), scale=kw.get("scale", 64.0))
        if spec.distributed:
            ref_dx = ref_dx[rows]
        # Weight decay: the reference adds wd * |W|^2 / 2 to the loss, so wd * W to dW.
        ref_loss += wd * 0.5 * float(np.sum(w_all ** 2))
        ref_dw = ref_dw + wd * w_all
        with tf.Graph().as_default():
            x, res, assign = build(comm, name, x_loc, y_loc, w_all, b_all, margin=margin,
                                   weight_decay=wd)
            tvars = [res.weights] + ([res.bias] if res.bias is not None else [])
            grads = tf.gradients(res.loss, [x] + tvars)
            total = res.loss + comm.allreduce_sum(res.reg_loss, name="reg_sum") \
                if spec.distributed else res.loss + res.reg_loss
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                sess.run(assign)
                vals = sess.run([total, res.accuracy] + grads)
        s, n = res.start, res.num_local
        c = {"start": s, "num_local": n,
             "loss": rel(vals[0], ref_loss), "accuracy": abs(vals[1] - ref_acc),
             "dx": rel(vals[2], ref_dx), "dw": rel(vals[3], ref_dw[s:s + n]),
             "shard_variables": len(res.shard_variables)}
        if ref_db is not None:
            c["db"] = rel(vals[4], ref_db[s:s + n])
        checks[key] = c

    # Partial FC with ratio 1.0 against the whole shard: loss, gradients and one momentum step.
    for name in ("dist_arcface", "dist_softmax"):
        results = {}
        for ratio in (None, 1.0):
            with tf.Graph().as_default():
                x, res, assign = build(comm, name, x_loc, y_loc, w_all, b_all,
                                       sample_ratio=ratio, weight_decay=1e-3)
                tvars = [res.weights] + ([res.bias] if res.bias is not None else [])
                grads = tf.gradients(res.loss, [x] + tvars)
                opt = tf.train.MomentumOptimizer(0.1, 0.9)
                step = opt.apply_gradients(list(zip(grads[1:], tvars)))
                dense = [tf.convert_to_tensor(g) for g in grads]
                with tf.Session() as sess:
                    sess.run(tf.global_variables_initializer())
                    sess.run(assign)
                    vals = sess.run([res.loss] + dense)
                    sess.run(step)
                    sess.run(step)
                    vals.append(sess.run(res.weights))
            results[ratio] = vals
        whole, part = results[None], results[1.0]
        checks["pfc1_" + name] = {"max_rel": max(rel(p, w) for p, w in zip(part, whole))}

    # Partial FC with ratio 0.4 on 41 classes: only the sampled rows (and their slots) move; all
    # positives are sampled, plus random others.
    x_all, w_all, b_all, y_all = global_data(sizes, 41)
    x_loc, y_loc = x_all[rows], y_all[rows]
    with tf.Graph().as_default():
        x, res, assign = build(comm, "dist_arcface", x_loc, y_loc, w_all, b_all,
                               sample_ratio=0.4, weight_decay=1e-3)
        grads = tf.gradients(res.loss, [res.weights])
        opt = tf.train.MomentumOptimizer(0.1, 0.9)
        step = opt.apply_gradients([(grads[0], res.weights)])
        slot = opt.get_slot(res.weights, "momentum")
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(assign)
            before = sess.run(res.weights)
            _, index = sess.run([step, res.sampled_index])
            after, momentum = sess.run([res.weights, slot])
    s, n = res.start, res.num_local
    positives = sorted({int(v) - s for v in y_all if s <= v < s + n})
    index = sorted(int(i) for i in index)
    changed = sorted(int(i) for i in np.nonzero(np.any(after != before, axis=1))[0])
    moved_slots = sorted(int(i) for i in np.nonzero(np.any(momentum != 0, axis=1))[0])
    checks["pfc_sampled"] = {
        "num_local": n, "sampled": index, "positives": positives, "changed_rows": changed,
        "slot_rows": moved_slots, "expected_count": max(int(0.4 * n), 1, len(positives))}

    x_all, w_all, b_all, y_all = global_data(sizes)
    if cluster.size > 1:
        owners = sharding.owner_of(y_all, C, cluster.size)
        checks["owner_of"] = {"ok": bool(all(
            sharding.shard_range(C, cluster.size, int(o))[0] <= yy
            < sum(sharding.shard_range(C, cluster.size, int(o))) for o, yy in zip(owners, y_all)))}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "layer-%d.json" % cluster.rank), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
