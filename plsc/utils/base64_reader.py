"""PLSC's ``plsc.utils.base64_reader``: ``train(data_dir, num_classes)`` reads this trainer's
file of ``<data_dir>/file_list.txt`` (one per trainer, as ``tools/process_base64_files.py
--in_place`` writes it), ``test(data_dir, datasets)`` the ``.bin`` sets."""
from images.largescale.readers import base64_file_reader as train
from images.largescale.readers import bin_sets_reader as test

__all__ = ["train", "test"]
