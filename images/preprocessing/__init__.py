"""Image preprocessing: one registry (:mod:`images.preprocessing.preprocessing_factory`)."""
