"""Networks: one folder per family, one registry (:mod:`images.models.model_factory`)."""
