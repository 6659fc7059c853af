"""Face verification on ``.bin`` pair sets (lfw, agedb_30, cfp_fp, ...), insightface's protocol.

A ``.bin`` file is a pickle of ``(list of encoded images, list of issame)``; pair i is images 2i
and 2i+1.  Every image and its horizontal flip are embedded, the two embeddings summed and
L2-normalised; the distance of a pair is the squared L2 distance in [0, 4].  Ten folds over the
pairs in order (no shuffle): in each, the threshold in 0, 0.01, ..., 3.99 with the best accuracy on
the other nine folds scores this fold.  Reported: mean and standard deviation of the fold
accuracies, and VAL at FAR = 1e-3 (threshold interpolated on the other folds' FAR curve over
0, 0.001, ..., 3.999).
"""
import pickle

import numpy as np

ACC_THRESHOLDS = np.arange(0, 4, 0.01)
VAL_THRESHOLDS = np.arange(0, 4, 0.001)


def load_bin(path):
    """``(list of encoded image bytes, bool array of issame)`` from a ``.bin`` file.

    Raises:
      ValueError: the file is not a pair set (wrong structure or an odd number of images).
    """
    with open(path, "rb") as f:
        try:
            bins, issame = pickle.load(f, encoding="bytes")
        except Exception as e:  # pickle raises many kinds
            raise ValueError("%s is not a verification .bin (pickle of (images, issame)): %s"
                             % (path, e)) from None
    bins = [bytes(b) for b in bins]
    issame = np.asarray(issame, dtype=bool)
    if len(bins) != 2 * len(issame):
        raise ValueError("%s holds %d images for %d pairs; expected two images per pair"
                         % (path, len(bins), len(issame)))
    return bins, issame


def write_bin(path, encoded_images, issame):
    """Writes a ``.bin`` pair set (used to build test sets)."""
    with open(path + ".tmp", "wb") as f:
        pickle.dump((list(encoded_images), [bool(s) for s in issame]), f, protocol=2)
    import os
    os.replace(path + ".tmp", path)


def decode_images(encoded, image_shape, chunk=256):
    """Encoded images -> float32 pixels ``[N, H, W, C]`` in [0, 255], resized to
    ``image_shape`` ``(C, H, W)``.

    TensorFlow's decoder and resize (:func:`images.largescale.data.decode_batch`, the ops of
    training and of the served model) in a private graph, so an image gives the same pixels
    here as there.
    """
    import tensorflow.compat.v1 as tf
    from images.largescale import data
    channels, height, width = image_shape
    out = np.empty((len(encoded), height, width, channels), np.float32)
    with tf.Graph().as_default():
        feed = tf.placeholder(tf.string, [None])
        decoded = data.decode_batch(feed, image_shape, normalized=False)
        with tf.Session() as sess:
            for i in range(0, len(encoded), chunk):
                out[i:i + chunk] = sess.run(decoded, {feed: [bytes(b) for b in
                                                             encoded[i:i + chunk]]})
    return out


def embed_with_flip(images, embed_fn, batch_size=64):
    """L2-normalised ``embed(x) + embed(flip(x))`` of images ``[N, H, W, C]`` (pixels in
    [0, 255]).

    ``embed_fn`` takes float32 images normalised to ``(x - 127.5) / 128`` and returns
    ``[n, emb]``.
    """
    chunks = []
    for i in range(0, len(images), batch_size):
        batch = (images[i:i + batch_size].astype(np.float32) - 127.5) / 128.0
        emb = np.asarray(embed_fn(batch), np.float64) + np.asarray(
            embed_fn(batch[:, :, ::-1, :].copy()), np.float64)
        chunks.append(emb)
    emb = np.concatenate(chunks, axis=0)
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def _folds(n, nfolds):
    # sklearn's KFold(shuffle=False): the first n % nfolds folds are one longer.
    sizes = np.full(nfolds, n // nfolds)
    sizes[:n % nfolds] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [np.arange(bounds[i], bounds[i + 1]) for i in range(nfolds)]


def _accuracy(threshold, dist, issame):
    predict = dist < threshold
    tp = np.sum(predict & issame)
    tn = np.sum(~predict & ~issame)
    return (tp + tn) / dist.size


def _val_far(threshold, dist, issame):
    predict = dist < threshold
    n_same, n_diff = np.sum(issame), np.sum(~issame)
    val = np.sum(predict & issame) / n_same if n_same else 0.0
    far = np.sum(predict & ~issame) / n_diff if n_diff else 0.0
    return val, far


def evaluate_distances(dist, issame, nfolds=10, far_target=1e-3):
    """The protocol's figures from pair distances.

    Returns:
      dict with ``accuracy`` (mean over folds), ``accuracy_std``, ``threshold`` (mean best
      threshold), ``val``, ``val_std``, ``far`` (at ``far_target``) and ``pairs``.
    """
    dist = np.asarray(dist, np.float64)
    issame = np.asarray(issame, bool)
    if dist.size < nfolds:
        raise ValueError("%d pairs cannot be split into %d folds" % (dist.size, nfolds))
    accs, thresholds, vals, fars = [], [], [], []
    folds = _folds(dist.size, nfolds)
    for k, test in enumerate(folds):
        train = np.concatenate([f for j, f in enumerate(folds) if j != k])
        train_acc = [_accuracy(t, dist[train], issame[train]) for t in ACC_THRESHOLDS]
        best = ACC_THRESHOLDS[int(np.argmax(train_acc))]
        thresholds.append(best)
        accs.append(_accuracy(best, dist[test], issame[test]))
        far_train = np.array([_val_far(t, dist[train], issame[train])[1]
                              for t in VAL_THRESHOLDS])
        if far_train.max() >= far_target:
            # FAR grows with the threshold; interpolate on its distinct values.
            far_u, first = np.unique(far_train, return_index=True)
            threshold = float(np.interp(far_target, far_u, VAL_THRESHOLDS[first]))
        else:
            threshold = 0.0
        val, far = _val_far(threshold, dist[test], issame[test])
        vals.append(val)
        fars.append(far)
    return {"accuracy": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
            "threshold": float(np.mean(thresholds)), "val": float(np.mean(vals)),
            "val_std": float(np.std(vals)), "far": float(np.mean(fars)), "pairs": int(dist.size)}


def evaluate_embeddings(embeddings, issame, nfolds=10):
    """Figures from the normalised embeddings of all images (pair i = rows 2i, 2i+1)."""
    e1, e2 = embeddings[0::2], embeddings[1::2]
    dist = np.sum(np.square(e1 - e2), axis=1)
    return evaluate_distances(dist, issame, nfolds)


def verify(bin_path, embed_fn, image_shape, batch_size=64, nfolds=10):
    """Reads a ``.bin`` set, embeds it with flips and returns :func:`evaluate_distances`'s
    figures."""
    encoded, issame = load_bin(bin_path)
    images = decode_images(encoded, image_shape)
    emb = embed_with_flip(images, embed_fn, batch_size)
    return evaluate_embeddings(emb, issame, nfolds)


def to_nhwc(images, image_shape):
    """Images a PLSC reader yields (Paddle's ``[N, C, H, W]``) or ``[N, H, W, C]`` as float32
    ``[N, H, W, C]``.

    Raises:
      ValueError: neither layout matches ``image_shape`` ``(C, H, W)``.
    """
    images = np.asarray(images, np.float32)
    channels, height, width = image_shape
    if images.ndim == 3 and channels == 1:
        images = images[..., None] if images.shape[1:] == (height, width) else images
    if images.ndim == 4 and images.shape[1:] == (channels, height, width):
        return np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    if images.ndim == 4 and images.shape[1:] == (height, width, channels):
        return images
    raise ValueError("images of shape %s match neither [N, %d, %d, %d] (PLSC's layout) nor "
                     "[N, %d, %d, %d] (the image shape set with set_image_shape/"
                     "set_input_info)" % (images.shape, channels, height, width, height, width,
                                          channels))


def verify_arrays(data_list, issame, embed_fn, image_shape, batch_size=64, nfolds=10):
    """The protocol's figures for a set a PLSC ``test_reader`` returns: ``data_list`` is
    ``[images, flipped images]``, already normalised (fed to the network as they are)."""
    if len(data_list) != 2:
        raise ValueError("a test_reader set holds [images, flipped images], got %d arrays"
                         % len(data_list))
    total = None
    for images in data_list:
        images = to_nhwc(images, image_shape)
        emb = np.concatenate([np.asarray(embed_fn(images[i:i + batch_size]), np.float64)
                              for i in range(0, len(images), batch_size)], axis=0)
        total = emb if total is None else total + emb
    total /= np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)
    return evaluate_embeddings(total, np.asarray(issame, bool), nfolds)
