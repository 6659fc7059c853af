"""Datasets: one registry (:mod:`images.datasets.dataset_factory`), converters, the tf.data pipeline."""
