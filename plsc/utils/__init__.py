"""PLSC's ``plsc.utils``: the readers (``jpeg_reader``, ``base64_reader``)."""
