"""The compatibility shims of images/compat.py."""
import subprocess
import sys


def test_serving_client_does_not_load_tensorflow():
    # The shims are lazy: a process that only talks to a server never imports TensorFlow.
    code = "import sys, images.serving.client; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def test_batch_norm_builds_and_skips_autograph(graph):
    import images  # noqa: F401  (installs the shims)
    import tensorflow.compat.v1 as tf
    import tf_slim as slim
    from tensorflow.python.autograph.core import config as ag_config


    out = slim.batch_norm(tf.zeros([2, 4, 4, 3]), is_training=True)
    assert out.shape.as_list() == [2, 4, 4, 3]
    assert any(getattr(r, "_prefix", None) == "tf_keras" for r in ag_config.CONVERSION_RULES)
    assert "tf_keras.legacy_tf_layers" in sys.modules

