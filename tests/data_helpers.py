"""Test helpers for the data tests: publisher-format archives, a loopback HTTP server, records.

The archives follow each publisher's layout exactly (member names, pickle keys, idx headers,
folder structure) with a handful of small images, so converters meet the real format.
"""
import contextlib
import gzip
import http.server
import io
import os
import pickle
import struct
import tarfile
import threading

import numpy as np
from PIL import Image

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
FLOWER_CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


# ----------------------------------------------------------------------------- archives
def _tar_add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1262304000
    tar.addfile(info, io.BytesIO(data))


def make_cifar10_archive(path, per_batch=4, test_size=5, seed=0):
    """Writes a cifar-10-python.tar.gz with the real member names and pickle layout.

    Returns:
      ``{'train': (images [N, 32, 32, 3], labels), 'test': (...)}`` as written.
    """
    rng = np.random.RandomState(seed)
    splits = {"train": ([], []), "test": ([], [])}
    with tarfile.open(path, "w:gz") as tar:
        meta = {b"label_names": [n.encode() for n in CIFAR_NAMES],
                b"num_cases_per_batch": per_batch, b"num_vis": 3072}
        _tar_add(tar, "cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2))
        for name, n, split in [("data_batch_%d" % i, per_batch, "train") for i in range(1, 6)] + [
                ("test_batch", test_size, "test")]:
            images = rng.randint(0, 256, (n, 32, 32, 3)).astype(np.uint8)
            labels = [int(x) for x in rng.randint(0, 10, n)]
            # Rows hold the red, then green, then blue 32x32 planes.
            data = images.transpose(0, 3, 1, 2).reshape(n, 3072)
            batch = {b"batch_label": b"batch", b"labels": labels, b"data": data,
                     b"filenames": [b"img_%d.png" % i for i in range(n)]}
            _tar_add(tar, "cifar-10-batches-py/" + name, pickle.dumps(batch, protocol=2))
            splits[split][0].append(images)
            splits[split][1].extend(labels)
        _tar_add(tar, "cifar-10-batches-py/readme.html", b"<html></html>")
    return {k: (np.concatenate(v[0]), np.array(v[1])) for k, v in splits.items()}


def _idx(array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(">%dI" % array.ndim, *array.shape)
    return header + array.astype(np.uint8).tobytes()


def make_mnist_files(folder, train=7, test=5, seed=0):
    """Writes the four idx gzip files; returns ``{'train': (images, labels), 'test': ...}``."""
    rng = np.random.RandomState(seed)
    out = {}
    for split, n, prefix in (("train", train, "train"), ("test", test, "t10k")):
        images = rng.randint(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = rng.randint(0, 10, n).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            with gzip.open(os.path.join(folder, "%s-%s-ubyte.gz" % (prefix, kind)), "wb") as f:
                f.write(_idx(array))
        out[split] = (images, labels.astype(np.int64))
    return out


def jpeg_bytes(pixels, quality=90):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(pixels):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def make_flowers_archive(path, per_class=75, side=16, seed=0):
    """Writes a flower_photos.tgz: ``flower_photos/<class>/<n>.jpg`` plus LICENSE.txt.

    Returns:
      ``{'<class>/<file>': jpeg bytes}``.
    """
    rng = np.random.RandomState(seed)
    files = {}
    with tarfile.open(path, "w:gz") as tar:
        _tar_add(tar, "flower_photos/LICENSE.txt", b"CC-BY\n")
        for cls in FLOWER_CLASSES:
            for i in range(per_class):
                data = jpeg_bytes(rng.randint(0, 256, (side, side + i % 3, 3)).astype(np.uint8))
                name = "%s/%d_%s.jpg" % (cls, 1000 + i, cls[:3])
                _tar_add(tar, "flower_photos/" + name, data)
                files[name] = data
    return files


# ----------------------------------------------------------------------------- HTTP
class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` ({path: bytes}) with Range support and injectable faults."""

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (http.server's name)
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1,
                                                                 len(data)))
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = srv.cut_after.pop(self.path, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@contextlib.contextmanager
def serve(files, honour_range=True):
    """A loopback HTTP server in a thread; yields it (``.url``, ``.requests``, ``.cut_after``).

    ``cut_after[path] = n`` makes the next answer for ``path`` stop after n body bytes.
    """
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files = dict(files)
    server.requests = []
    server.cut_after = {}
    server.honour_range = honour_range
    server.url = "http://127.0.0.1:%d" % server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# ----------------------------------------------------------------------------- records
def write_records(path, records):
    """Writes raw byte strings (or Examples) to one TFRecord file."""
    import tensorflow.compat.v1 as tf
    with tf.io.TFRecordWriter(path) as w:
        for r in records:
            w.write(r if isinstance(r, bytes) else r.SerializeToString())
    return path


def tiny_example(label, value=None, side=4, encoded=None):
    """A grey PNG example whose pixels all equal ``value`` (default ``label % 256``)."""
    from images.datasets import example_codec
    if encoded is None:
        v = label % 256 if value is None else value
        encoded = png_bytes(np.full((side, side), v, np.uint8))
    return example_codec.image_to_tfexample(encoded, "png", side, side, label)


def corrupt_byte(path, offset):
    """Flips one byte of a file in place."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def truncate(path, size):
    with open(path, "r+b") as f:
        f.truncate(size)
