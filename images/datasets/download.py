"""Fetching dataset archives: mirrors, resumable HTTP downloads, a progress bar, checksums.

A download goes to ``<name>.part`` and is renamed to ``<name>`` only once it is complete and its
checksum (when the publisher gives one) matches, so a file with the final name is always whole.
An interrupted download resumes from the end of ``<name>.part`` with an HTTP ``Range`` request;
a server that ignores the range sends the whole file again and the partial file is replaced.
"""
import dataclasses
import hashlib
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Optional, Sequence

CHUNK = 1 << 16
TIMEOUT_SECONDS = 60


class DownloadError(RuntimeError):
    """A download failed; the message names the URL and what to do."""


class ChecksumError(DownloadError):
    """A file's checksum differs from the one its publisher gives."""


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file a converter needs.

    Attributes:
      name: the file's name, both at the source and in dataset_dir.
      urls: where the file is published, tried in order (the first that answers wins).
      md5: the MD5 the publisher gives, or None when the publisher gives none.
    """
    name: str
    urls: Sequence[str]
    md5: Optional[str] = None


def source_urls(remote: RemoteFile, download_url: Optional[str]) -> Sequence[str]:
    """The URLs to try for ``remote``: the mirror's alone when ``download_url`` is given.

    ``download_url`` is a folder URL (``http(s)://host/path/`` or ``file:///path/``) that holds the
    publisher's file names; a URL that already ends with ``remote.name`` is used as it is.

    Raises:
      ValueError: the mirror's scheme is not http, https or file.
    """
    if not download_url:
        return list(remote.urls)
    scheme = urllib.parse.urlsplit(download_url).scheme
    if scheme not in ("http", "https", "file"):
        raise ValueError("--download_url must start with http://, https:// or file:// (got %r)"
                         % download_url)
    path = urllib.parse.urlsplit(download_url).path
    if path.rstrip("/").endswith("/" + remote.name):
        return [download_url]
    return [download_url.rstrip("/") + "/" + urllib.parse.quote(remote.name)]


def file_md5(path):
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_md5(path, expected, source):
    """Raises ChecksumError when ``path``'s MD5 is not ``expected`` (None: nothing to check)."""
    if not expected:
        return
    got = file_md5(path)
    if got != expected.lower():
        raise ChecksumError(
            "%s (from %s) has MD5 %s but its publisher gives %s: the file is damaged or not the "
            "published one. Delete it and run the conversion again (or use another "
            "--download_url)." % (path, source, got, expected))


class ProgressBar:
    """A one-line progress bar on stderr (a new line every 10% when stderr is not a terminal)."""

    def __init__(self, label, total, stream=None, enabled=True):
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.last_decile = -1

    def update(self, done):
        """Redraws for ``done`` bytes (throttled)."""
        if not self.enabled:
            return
        if self.tty:
            now = time.monotonic()
            if now - self.last_draw < 0.2 and (self.total is None or done < self.total):
                return
            self.last_draw = now
            self.stream.write("\r" + self._line(done))
        else:
            if not self.total:
                return
            decile = int(10 * done / self.total)
            if decile == self.last_decile:
                return
            self.last_decile = decile
            self.stream.write(self._line(done) + "\n")
        self.stream.flush()

    def finish(self, done):
        """Draws the final state and ends the line."""
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + self._line(done) + "\n")
        elif self.last_decile < 10:
            self.stream.write(self._line(done) + "\n")
        self.stream.flush()

    def _line(self, done):
        rate = done / max(time.monotonic() - self.start, 1e-6)
        if self.total:
            frac = min(1.0, done / self.total)
            bar = "#" * int(30 * frac)
            return "%s [%-30s] %5.1f%% %s/%s %s/s" % (self.label, bar, 100 * frac, _human(done),
                                                    _human(self.total), _human(rate))
        return "%s %s %s/s" % (self.label, _human(done), _human(rate))


def _human(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return "%.1f%s" % (n, unit) if unit != "B" else "%d%s" % (n, unit)
        n /= 1024.0
    return str(n)


def fetch(remote: RemoteFile, dataset_dir, download_url=None, progress=True):
    """Makes sure ``dataset_dir/remote.name`` holds the published file; returns its path.

    A file already there is not fetched again (its checksum is still verified).  Otherwise the
    URLs from :func:`source_urls` are tried in order.

    Raises:
      DownloadError: every source failed; the message lists each URL and its error.
      ChecksumError: the file's MD5 differs from the publisher's.
    """
    os.makedirs(dataset_dir, exist_ok=True)
    path = os.path.join(dataset_dir, remote.name)
    if os.path.isfile(path):
        print("%s is already in %s; not downloading it again" % (remote.name, dataset_dir),
              file=sys.stderr)
        verify_md5(path, remote.md5, path)
        return path
    failures = []
    for url in source_urls(remote, download_url):
        try:
            download(url, path, progress=progress)
        except (DownloadError, OSError, urllib.error.URLError) as e:
            failures.append("%s: %s" % (url, e))
            continue
        try:
            verify_md5(path, remote.md5, url)
        except ChecksumError:
            os.remove(path)
            raise
        return path
    raise DownloadError("could not download %s:\n  %s\nIf this machine has no internet access, "
                        "copy the file into %s, or point --download_url at a mirror "
                        "(http(s):// or file://)." % (remote.name, "\n  ".join(failures),
                                                      dataset_dir))


def download(url, path, progress=True):
    """Downloads ``url`` to ``path`` through ``path + '.part'``, resuming a partial download.

    Raises:
      DownloadError: the server answered with an error, or sent fewer bytes than announced.
    """
    part = path + ".part"
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "file":
        _copy_local(urllib.request.url2pathname(urllib.parse.urlsplit(url).path), part,
                    os.path.basename(path), progress)
        os.replace(part, path)
        return
    if scheme not in ("http", "https"):
        raise DownloadError("unsupported URL scheme %r (use http, https or file)" % scheme)
    have = os.path.getsize(part) if os.path.isfile(part) else 0
    request = urllib.request.Request(url, headers={"User-Agent": "fastnn-downloader"})
    if have:
        request.add_header("Range", "bytes=%d-" % have)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            # The range starts at or past the end: the partial file may already be whole (its
            # checksum decides); otherwise start again from nothing.
            total = _range_total(e.headers.get("Content-Range"))
            if total == have:
                os.replace(part, path)
                return
            os.remove(part)
            return download(url, path, progress)
        raise DownloadError("HTTP %d %s" % (e.code, e.reason)) from None
    with response:
        status = response.status
        if have and status == 206:
            start = have
            total = _range_total(response.headers.get("Content-Range"))
            mode = "ab"
            print("resuming %s at %s" % (os.path.basename(path), _human(have)), file=sys.stderr)
        else:
            start = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        bar = ProgressBar(os.path.basename(path), total, enabled=progress)
        done = start
        with open(part, mode) as out:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                out.write(block)
                done += len(block)
                bar.update(done)
        bar.finish(done)
    if total is not None and done != total:
        raise DownloadError("connection closed after %d of %d bytes; run the conversion again "
                            "to resume from %s" % (done, total, part))
    os.replace(part, path)


def _range_total(content_range):
    """The full length from a ``Content-Range: bytes a-b/total`` header, or None."""
    if not content_range or "/" not in content_range:
        return None
    total = content_range.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _copy_local(source, part, label, progress):
    if not os.path.isfile(source):
        raise DownloadError("no such file: %s" % source)
    total = os.path.getsize(source)
    bar = ProgressBar(label, total, enabled=progress)
    done = 0
    with open(source, "rb") as src, open(part, "wb") as out:
        for block in iter(lambda: src.read(1 << 20), b""):
            out.write(block)
            done += len(block)
            bar.update(done)
    bar.finish(done)
    shutil.copystat(source, part)
