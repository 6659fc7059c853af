"""The TF-slim migration snippets of docs/models.md run as they are written.

Each snippet is slim code whose only change is its import line (``from nets import ...`` ->
``from images.models.nets import ...``, the old line kept as a comment).  The fine-tuning one
restores a checkpoint this test writes with slim's variable names.
"""
import os
import re

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
import tf_slim as slim

import images  # noqa: F401  (compat shim)
from images.models.nets import inception

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "models.md")


def _snippets():
    with open(DOC, encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    return [b for b in blocks if "# was: from nets" in b]


def test_snippets_change_only_the_import_lines():
    snippets = _snippets()
    assert len(snippets) == 3
    for snippet in snippets:
        imports = [line for line in snippet.splitlines() if line.startswith(("import", "from"))]
        ours = [line for line in imports if "images.models.nets" in line]
        assert ours and all("# was: from nets" in line for line in ours)
        assert set(imports) - set(ours) <= {
            "import numpy as np", "import tensorflow.compat.v1 as tf", "import tf_slim as slim"}


def _run(snippet, **namespace):
    with tf.Graph().as_default():
        exec(compile(snippet, DOC, "exec"), namespace)  # noqa: S102  (our own documentation)
    return namespace


@pytest.fixture(scope="module")
def inception_v1_checkpoint(tmp_path_factory):
    """A checkpoint with the variables of slim's published inception_v1 (1001 classes)."""
    path = str(tmp_path_factory.mktemp("ckpt") / "inception_v1.ckpt")
    with tf.Graph().as_default():
        with slim.arg_scope(inception.inception_v1_arg_scope()):
            inception.inception_v1(tf.zeros([1, 224, 224, 3]), num_classes=1001,
                                   is_training=False)
        trunk = tf.global_variables("InceptionV1/Mixed_5c/Branch_0/Conv2d_0a_1x1/weights")[0]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(trunk.assign(tf.fill(trunk.shape, 0.125)))
            tf.train.Saver().save(sess, path)
    return path


def test_feature_extraction_snippet():
    namespace = _run(_snippets()[0])
    assert namespace["features"].shape == (2, 1, 1, 2048)
    assert namespace["end_points"]["resnet_v1_50/block4"].shape.as_list() == [None, 7, 7, 2048]


def test_fine_tuning_snippet_restores_all_but_the_classifier(inception_v1_checkpoint):
    snippet = _snippets()[1]
    namespace = _run(snippet + "\n    trunk = sess.run(tf.global_variables('InceptionV1/Mixed_5c/"
                     "Branch_0/Conv2d_0a_1x1/weights')[0])\n",
                     checkpoint_path=inception_v1_checkpoint)
    restored = {v.op.name for v in namespace["variables_to_restore"]}
    assert "InceptionV1/Mixed_5c/Branch_0/Conv2d_0a_1x1/weights" in restored
    assert not [n for n in restored if n.startswith("InceptionV1/Logits")]
    assert np.isfinite(namespace["first_loss"])
    assert np.all(namespace["trunk"] == 0.125)  # from the checkpoint, not the initialiser
    assert namespace["logits"].shape.as_list() == [2, 5]


def test_factory_training_scope_and_nasnet_config_snippet():
    namespace = _run(_snippets()[2])
    assert namespace["logits"].shape.as_list() == [1, 1001]
    assert namespace["end_points"]["Predictions"].op.name == "MobilenetV1/Predictions/Reshape_1"
    assert namespace["embedding"].shape.as_list() == [1, 3, 3, 320]
    assert namespace["nas_logits"].shape.as_list() == [1, 10]
    assert "Cell_2" in namespace["nas_end_points"] and "Cell_3" not in namespace[
        "nas_end_points"]
