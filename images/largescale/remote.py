"""PLSC's ``set_hdfs_info``: fetch the starting checkpoint from a remote file system before
training and upload the saved checkpoints after it, through TensorFlow's own file systems.

``fs_name`` is the file system's root, e.g. ``hdfs://namenode:9000``; the directories are paths
on it.  TensorFlow 2.15 reaches ``hdfs://`` and ``s3://`` through the ``tensorflow-io`` package
(imported here when installed; it also needs Hadoop's ``libhdfs`` and ``CLASSPATH``), ``gs://``
natively.  ``fs_ugi`` is Hadoop's ``user,password``: the user becomes ``HADOOP_USER_NAME``
(simple authentication), the password is not used by Hadoop any more.  PLSC ran
``hadoop fs -get/-put`` instead and let the other workers poll a lock file; here rank 0 copies
and the others wait at a collective.
"""
import logging
import os

import tensorflow as tf

log = logging.getLogger("fastnn")


def remote_path(fs_name, path):
    """``fs_name`` joined with ``path``."""
    return fs_name.rstrip("/") + "/" + str(path).lstrip("/")


def check_file_system(fs_name):
    """Raises ValueError when TensorFlow cannot open ``fs_name``'s scheme (the message says
    what to install); network errors are left for the copy to report."""
    if "://" not in str(fs_name):
        raise ValueError("fs_name must be a file system URI such as hdfs://namenode:9000, got %r"
                         % (fs_name,))
    scheme = fs_name.split("://", 1)[0]
    for attempt in range(2):
        try:
            tf.io.gfile.exists(remote_path(fs_name, "/"))
            return
        except tf.errors.UnimplementedError:
            if attempt == 0:
                try:
                    import tensorflow_io  # noqa: F401  (registers hdfs://, s3://)
                    continue
                except ImportError:
                    pass
            raise ValueError(
                "TensorFlow has no %r file system here: pip install tensorflow-io==0.36.0 "
                "(hdfs:// also needs Hadoop's libhdfs and CLASSPATH), or copy the checkpoint "
                "yourself (hadoop fs -get) and use set_checkpoint_dir" % scheme) from None
        except tf.errors.OpError:
            return  # reachable or not: the copy reports it with the path


def set_user(fs_ugi):
    """Hadoop's ``user,password`` -> ``HADOOP_USER_NAME`` (when not set already)."""
    user = str(fs_ugi or "").split(",", 1)[0].strip()
    if user:
        os.environ.setdefault("HADOOP_USER_NAME", user)


def copy_tree(src, dst):
    """Copies every file under ``src`` to ``dst`` (either may be remote); returns the count.

    Links (the local epoch names of :mod:`epoch_alias`) are not followed: the checkpoints they
    name are copied once, under their own names.
    """
    if not tf.io.gfile.isdir(src):
        raise FileNotFoundError("%s does not exist or is not a folder" % src)
    count = 0
    if "://" in src:
        walk = tf.io.gfile.walk(src)
    else:
        walk = ((folder, dirs, [f for f in files
                                if not os.path.islink(os.path.join(folder, f))])
                for folder, dirs, files in os.walk(src))
    for folder, _, files in walk:
        rel = folder[len(src):].lstrip("/")
        target = dst.rstrip("/") + ("/" + rel if rel else "")
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(folder.rstrip("/") + "/" + name, target + "/" + name,
                             overwrite=True)
            count += 1
    return count


def download(fs_name, remote_dir, local_dir):
    """Fetches ``remote_dir`` into ``local_dir``."""
    src = remote_path(fs_name, remote_dir)
    count = copy_tree(src, local_dir)
    log.info("downloaded %d file(s) from %s to %s", count, src, local_dir)
    return count


def upload(local_dir, fs_name, remote_dir):
    """Copies ``local_dir`` to ``remote_dir/<basename of local_dir>`` (``hadoop fs -put``)."""
    dst = remote_path(fs_name, remote_dir).rstrip("/") + "/" + os.path.basename(
        os.path.abspath(local_dir))
    count = copy_tree(local_dir, dst)
    log.info("uploaded %d file(s) from %s to %s", count, local_dir, dst)
    return count
