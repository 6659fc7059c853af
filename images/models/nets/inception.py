"""Brings TF-slim's Inception networks under one namespace (``nets.inception``)."""
# pylint: disable=unused-import
from images.models.nets.inception_resnet_v2 import inception_resnet_v2  # noqa: F401
from images.models.nets.inception_resnet_v2 import inception_resnet_v2_arg_scope  # noqa: F401
from images.models.nets.inception_resnet_v2 import inception_resnet_v2_base  # noqa: F401
from images.models.nets.inception_v1 import inception_v1  # noqa: F401
from images.models.nets.inception_v1 import inception_v1_arg_scope  # noqa: F401
from images.models.nets.inception_v1 import inception_v1_base  # noqa: F401
from images.models.nets.inception_v2 import inception_v2  # noqa: F401
from images.models.nets.inception_v2 import inception_v2_arg_scope  # noqa: F401
from images.models.nets.inception_v2 import inception_v2_base  # noqa: F401
from images.models.nets.inception_v3 import inception_v3  # noqa: F401
from images.models.nets.inception_v3 import inception_v3_arg_scope  # noqa: F401
from images.models.nets.inception_v3 import inception_v3_base  # noqa: F401
from images.models.nets.inception_v4 import inception_v4  # noqa: F401
from images.models.nets.inception_v4 import inception_v4_arg_scope  # noqa: F401
from images.models.nets.inception_v4 import inception_v4_base  # noqa: F401
