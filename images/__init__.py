"""fastnn: TF-slim style image classification with Horovod and large-scale classification.

Importing the package installs the one compatibility shim the pinned stack needs (see
:mod:`images.compat`) before any layer is built.
"""
from images import compat as _compat

_compat.install()
