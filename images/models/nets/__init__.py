"""TF-slim's ``nets`` package, module for module: code written against slim runs unchanged with
``from nets import resnet_v1`` replaced by ``from images.models.nets import resnet_v1``.

Same public functions, classes and constants, signatures and defaults, end points, ``Predictions``
op names and variables (so the published slim checkpoints load).  Where ``tf_slim.nets``
(tf-slim 1.1.0) has a piece with slim's current interface it is used as is; the rest is written
here.  The model registry (:mod:`images.models.model_factory`), the trainer and the large-scale
backbone build through these functions.  See docs/models.md.
"""
