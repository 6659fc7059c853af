"""Single-process, whole-layer numpy float64 reference of the large-scale losses.

Written from the formulas in PLSC.md, independently of images/largescale: the full weight matrix,
an ordinary softmax cross-entropy over all classes, and gradients by central differences.
"""
import math

import numpy as np


def _target(cos_t, m1, m2, m3, easy_margin):
    theta = np.arccos(np.clip(cos_t, -1 + 1e-6, 1 - 1e-6))
    phi = np.cos(m1 * theta + m2)
    theta_max = (math.pi - m2) / m1
    if not easy_margin and theta_max < math.pi and not (m1 == 1 and m2 == 0):
        shift = m2 * math.sin(math.pi - m2) if m1 == 1 else 1 + math.cos(theta_max)
        phi = np.where(cos_t > math.cos(theta_max), phi, cos_t - shift)
    if m1 == 1 and m2 == 0:
        phi = cos_t
    if easy_margin:
        return np.where(cos_t > 0, phi - m3, cos_t)
    return phi - m3


def logits(x, w, b, y, margins=None, scale=64.0, easy_margin=False):
    """Whole-layer logits ``[G, C]`` (margin on the target column when ``margins`` is given)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    if margins is None:
        return x @ w.T + (0 if b is None else np.asarray(b, np.float64))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    wn = w / np.linalg.norm(w, axis=1, keepdims=True)
    cos = np.clip(xn @ wn.T, -1, 1)
    rows = np.arange(len(y))
    out = cos.copy()
    out[rows, y] = _target(cos[rows, y], *margins, easy_margin)
    return scale * out


def loss(x, w, b, y, **kw):
    """Mean softmax cross-entropy over the batch."""
    z = logits(x, w, b, y, **kw)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def accuracy(x, w, b, y, margins=None, scale=64.0):
    """Top-1 accuracy from the logits without margin."""
    z = logits(x, w, b, y, margins=None) if margins is None else scale * (
        (x / np.linalg.norm(x, axis=1, keepdims=True))
        @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T)
    return float(np.mean(np.argmax(z, axis=1) == y))


def numeric_grad(fn, arr, h=1e-6):
    """Central-difference gradient of scalar ``fn()`` with respect to ``arr`` (changed in place
    and restored)."""
    grad = np.zeros_like(arr)
    it = np.nditer(arr, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = arr[i]
        arr[i] = old + h
        up = fn()
        arr[i] = old - h
        down = fn()
        arr[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


def loss_and_grads(x, w, b, y, **kw):
    """``(loss, dx, dw, db)`` in float64 (db None without bias)."""
    x, w = np.array(x, np.float64), np.array(w, np.float64)
    b = None if b is None else np.array(b, np.float64)

    def f():
        return loss(x, w, b, y, **kw)
    return (f(), numeric_grad(f, x), numeric_grad(f, w),
            None if b is None else numeric_grad(f, b))
