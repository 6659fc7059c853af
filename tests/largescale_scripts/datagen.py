"""Small generated data sets for the large-scale tests: base64 line files and .bin pair sets."""
import base64
import io
import os

import numpy as np
from PIL import Image


def png_bytes(pixels):
    """PNG encoding of a uint8 ``[H, W, 3]`` array."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def class_image(label, rng, size=28):
    """An image whose colour depends on the class, with noise."""
    base = np.array([(label * 37) % 256, (label * 91) % 256, (label * 53) % 256], np.float64)
    pixels = base + rng.randint(-20, 21, (size, size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_base64_dataset(folder, num_images, num_classes, num_files=3, size=28, seed=0):
    """Writes ``num_files`` base64 files and ``file_list.txt``; returns the labels in order."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, num_classes, num_images)
    names = ["data-%d.txt" % i for i in range(num_files)]
    handles = [open(os.path.join(folder, n), "w") for n in names]
    for i, label in enumerate(labels):
        b64 = base64.b64encode(png_bytes(class_image(label, rng, size))).decode()
        handles[i % num_files].write("%s\t%d\n" % (b64, label))
    for h in handles:
        h.close()
    with open(os.path.join(folder, "file_list.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    return labels


def write_pair_set(path, num_pairs=20, size=28, seed=1):
    """A .bin verification set of random images (pairs alternate same/different)."""
    from images.largescale import verification
    rng = np.random.RandomState(seed)
    encoded, issame = [], []
    for i in range(num_pairs):
        a = rng.randint(0, 256, (size, size, 3)).astype(np.uint8)
        same = i % 2 == 0
        b = a if same else rng.randint(0, 256, (size, size, 3)).astype(np.uint8)
        encoded += [png_bytes(a), png_bytes(b)]
        issame.append(same)
    verification.write_bin(path, encoded, issame)


def jpeg_bytes(pixels, quality=90):
    """JPEG encoding of a uint8 ``[H, W, 3]`` array."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_label_dataset(folder, num_images, num_classes, size=28, seed=0):
    """PLSC's default layout: ``folder/images/<i>.jpg`` and ``folder/label.txt`` with
    ``images/<i>.jpg <label>`` lines; returns the labels in order."""
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    rng = np.random.RandomState(seed)
    labels = np.arange(num_images) % num_classes
    with open(os.path.join(folder, "label.txt"), "w") as f:
        for i, label in enumerate(labels):
            name = "images/%05d.jpg" % i
            with open(os.path.join(folder, name), "wb") as img:
                img.write(jpeg_bytes(class_image(int(label), rng, size)))
            f.write("%s %d\n" % (name, label))
    return labels
