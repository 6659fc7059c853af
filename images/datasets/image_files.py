"""Reading and checking image files (JPEG and PNG) before they go into TFRecords.

Every file is decoded completely once, so truncated or damaged images are found at conversion
time rather than in the middle of training.  The checks use Pillow only (no TensorFlow), and
Pillow releases the GIL while it decodes, so a thread pool checks files in parallel.
"""
import concurrent.futures
import dataclasses
import functools
import io
import os
from typing import Iterable, Iterator, List, Optional, Tuple

from PIL import Image

# Pillow reports multi-picture JPEGs from some cameras as MPO; their first frame is a plain JPEG.
_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png"}


@dataclasses.dataclass
class ImageInfo:
    """One checked image: its bytes (ready for ``image/encoded``) or why it was rejected."""
    path: str
    encoded: Optional[bytes] = None
    image_format: Optional[str] = None
    height: int = 0
    width: int = 0
    error: Optional[str] = None
    reencoded: bool = False

    @property
    def ok(self):
        return self.error is None


def inspect_bytes(data, path="<bytes>", keep=True):
    """Decodes ``data`` fully and returns an :class:`ImageInfo` (``error`` set when unusable).

    JPEG and PNG bytes are kept as they are.  CMYK JPEGs, which TensorFlow's JPEG decoder cannot
    read, are re-encoded as RGB JPEG (quality 95).  With ``keep=False`` the bytes are dropped
    (a first pass that only checks); :func:`load_encoded` reads them again.
    """
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format
            if fmt not in _FORMATS:
                return ImageInfo(path, error="unsupported image format %s (JPEG or PNG expected; "
                                              "convert the file)" % fmt)
            probe.load()  # decodes every pixel: truncated or damaged data raises here
            width, height = probe.size
            mode = probe.mode
            if width < 1 or height < 1:
                return ImageInfo(path, error="empty image (%dx%d)" % (width, height))
            if _FORMATS[fmt] == "jpeg" and mode == "CMYK":
                buf = io.BytesIO()
                probe.convert("RGB").save(buf, format="JPEG", quality=95)
                data = buf.getvalue()
        reencoded = _FORMATS[fmt] == "jpeg" and mode == "CMYK"
    except Image.DecompressionBombError as e:
        return ImageInfo(path, error="image too large to decode safely: %s" % e)
    except (OSError, SyntaxError, ValueError) as e:
        # Pillow raises UnidentifiedImageError (an OSError) for non-images and OSError or
        # SyntaxError for damaged ones.
        msg = str(e) or e.__class__.__name__
        if "cannot identify image file" in msg:
            msg = "not an image file"
        return ImageInfo(path, error="cannot decode: %s" % msg)
    return ImageInfo(path, encoded=data if keep else None, image_format=_FORMATS[fmt],
                     height=height, width=width, reencoded=reencoded)


def load_encoded(info):
    """The bytes to store for an image checked with ``keep=False``."""
    if info.encoded is not None:
        return info.encoded
    if info.reencoded:
        return inspect_file(info.path).encoded
    with open(info.path, "rb") as f:
        return f.read()


def inspect_file(path, keep=True):
    """Reads and checks one file; I/O errors are reported in ``error`` rather than raised."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return ImageInfo(path, error="cannot read: %s" % e)
    if not data:
        return ImageInfo(path, error="empty file")
    return inspect_bytes(data, path, keep)


def iter_inspect(paths: Iterable[str], num_workers=None, chunk=256,
                 keep=True) -> Iterator[ImageInfo]:
    """Checks files with ``num_workers`` threads, yielding results in the order of ``paths``.

    Work is submitted ``chunk`` files at a time, so memory holds at most one chunk of images.
    """
    check = functools.partial(inspect_file, keep=keep)
    paths = list(paths)
    workers = max(1, num_workers or os.cpu_count() or 1)
    if workers == 1:
        for p in paths:
            yield check(p)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(paths), chunk):
            yield from pool.map(check, paths[start:start + chunk])


def list_class_folders(root) -> Tuple[List[str], List[Tuple[str, str]], List[str]]:
    """Finds the class sub-folders of ``root`` and the files in each (recursively).

    Returns:
      ``(class names sorted, [(path, class name)] sorted by path, [files directly in root])``.
      Hidden entries (names starting with '.') are included in the file lists so the caller
      can report them rather than drop them silently.
    """
    classes, stray = [], []
    for entry in sorted(os.listdir(root)):
        full = os.path.join(root, entry)
        if os.path.isdir(full):
            if not entry.startswith("."):
                classes.append(entry)
        else:
            stray.append(full)
    files = []
    for name in classes:
        for folder, subdirs, names in os.walk(os.path.join(root, name)):
            subdirs.sort()
            files.extend((os.path.join(folder, n), name) for n in sorted(names))
    return classes, sorted(files), stray
