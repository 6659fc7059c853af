"""PLSC's ``plsc.utils.jpeg_reader``: ``arc_train(data_dir, class_dim)`` reads
``<data_dir>/label.txt`` and its images, ``test(data_dir, datasets)`` the ``.bin`` sets
(:mod:`images.largescale.readers`).  Samples are ``(float32 [3, 112, 112], label)``."""
from images.largescale.readers import bin_sets_reader as test
from images.largescale.readers import label_file_reader as arc_train

__all__ = ["arc_train", "test"]
