#!/usr/bin/env python
"""Writes docs/models.md from the registry and ``tests/data/variables``.

    python tests/data/make_models_doc.py          # rewrite docs/models.md
    python tests/data/make_models_doc.py --check  # exit 1 if it is out of date

tests/test_models.py checks that the file matches (``render()``), so a registry change that is not
reflected in the document fails the tests.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from images.models import model_factory  # noqa: E402

DOC = os.path.join(ROOT, "docs", "models.md")
VARIABLES = os.path.join(ROOT, "tests", "data", "variables")

HEAD = """# Model zoo

Every network of FastNN's model map, built by `images.models.nets`: TF-slim's `nets` package,
module for module, with slim's functions, signatures, defaults, end points and variable names,
so the published TF-slim checkpoints load (`--task_type=finetune`) and slim code runs unchanged.
The registry (`images.models.model_factory`), the trainer and the large-scale backbone build
through the same functions.

## Coming from TF-slim

Change the import line; nothing else:

| TF-slim | fastnn |
|---|---|
| `from nets import resnet_v1` (alexnet, overfeat, vgg, cifarnet, lenet, inception, inception_v1 .. inception_v4, inception_resnet_v2, inception_utils, resnet_utils, resnet_v1, resnet_v2, mobilenet_v1, nets_factory) | `from images.models.nets import resnet_v1` |
| `from nets.mobilenet import mobilenet_v2` (mobilenet, conv_blocks, mobilenet_v2) | `from images.models.nets.mobilenet import mobilenet_v2` |
| `from nets.nasnet import nasnet` (nasnet, nasnet_utils, pnasnet) | `from images.models.nets.nasnet import nasnet` |

Where tf-slim 1.1.0 (`tf_slim.nets`) lags slim's current `nets`, these modules have what it
lacks: `global_pool` on AlexNet, OverFeat, VGG and Inception v1-v3, `final_endpoint` on every
`*_base`, `reuse` everywhere slim has it, `resnet_utils` with `store_non_strided_activations`,
`min_base_depth`/`depth_multiplier` on ResNet v1, MobileNet v2's conv-def library
(`V2_DEF`, `mobilenet.training_scope`, `conv_blocks`), NASNet's configurations
(`nasnet.large_imagenet_config()`, `config=`), `batch_norm_scale` on the Inception arg scopes
and `is_training` on MobileNet v1's.  NASNet's configurations are `HParams` objects
(`config.set_hparam(...)`) since TensorFlow 2 has no `tf.contrib.training`.

Feature extraction (slim's pre-logits output, here ResNet-50's `pool5`):

```python
import numpy as np
import tensorflow.compat.v1 as tf
import tf_slim as slim
from images.models.nets import resnet_v1  # was: from nets import resnet_v1

images = tf.placeholder(tf.float32, [None, 224, 224, 3])
with slim.arg_scope(resnet_v1.resnet_arg_scope()):
    net, end_points = resnet_v1.resnet_v1_50(images, num_classes=None, is_training=False)
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    features = sess.run(net, {images: np.zeros([2, 224, 224, 3], np.float32)})
print(features.shape, end_points['resnet_v1_50/block4'].shape)  # (2, 1, 1, 2048) (?, 7, 7, 2048)
```

Fine-tuning a published checkpoint on new classes: restore everything but the classifier
(`checkpoint_path` is e.g. `inception_v1.ckpt` from slim's model table):

```python
import tensorflow.compat.v1 as tf
import tf_slim as slim
from images.models.nets import inception  # was: from nets import inception

images = tf.random.uniform([2, 224, 224, 3])
labels = tf.zeros([2], tf.int64)
with slim.arg_scope(inception.inception_v1_arg_scope()):
    logits, end_points = inception.inception_v1(images, num_classes=5, is_training=True)
loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
variables_to_restore = slim.get_variables_to_restore(exclude=['InceptionV1/Logits'])
init_fn = slim.assign_from_checkpoint_fn(checkpoint_path, variables_to_restore)
train_op = slim.learning.create_train_op(
    loss, tf.train.GradientDescentOptimizer(0.01),
    variables_to_train=slim.get_trainable_variables('InceptionV1/Logits'))
with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    init_fn(sess)
    first_loss = sess.run(train_op)
```

The factory, MobileNet v2's training scope and a NASNet configuration, as in slim:

```python
import tensorflow.compat.v1 as tf
import tf_slim as slim
from images.models.nets import nets_factory  # was: from nets import nets_factory
from images.models.nets.mobilenet import mobilenet_v2  # was: from nets.mobilenet import ...
from images.models.nets.nasnet import nasnet  # was: from nets.nasnet import nasnet

network_fn = nets_factory.get_network_fn('mobilenet_v1_025', num_classes=1001)
logits, end_points = network_fn(tf.zeros([1, network_fn.default_image_size,
                                          network_fn.default_image_size, 3]))
with slim.arg_scope(mobilenet_v2.training_scope()):
    v2_logits, v2_end_points = mobilenet_v2.mobilenet(tf.zeros([1, 96, 96, 3]))
embedding = v2_end_points['layer_18/output']
config = nasnet.mobile_imagenet_config()
config.set_hparam('num_cells', 3)
with slim.arg_scope(nasnet.nasnet_mobile_arg_scope()):
    nas_logits, nas_end_points = nasnet.build_nasnet_mobile(
        tf.zeros([1, 96, 96, 3]), 10, is_training=False, config=config)
```

## The registry

```python
from images.models import model_factory
network_fn = model_factory.get_network_fn("mobilenet_v1", num_classes=1001, is_training=True)
logits, end_points = network_fn(images)    # slim's mobilenet_v1 in its arg scope
features, _ = model_factory.get_network_fn("mobilenet_v1", num_classes=0)(images)  # [batch, 1024]
model_factory.list_models("resnet_v2_*")
```

The registry's records hold the slim functions (`record.network_fn is
nets_factory.networks_map[name]`).  Its feature mode (`num_classes=0` or None, used by the
trainer and the large-scale backbone) turns slim's pre-logits output into `[batch, depth]`; the
options each network takes are its slim function's (others are rejected).  Networks train in
float32, float16 (with loss scaling) and bfloat16; an op with no kernel for the 16-bit type
(`LRN` in bfloat16) runs in float32 between casts.  Columns:

* **parameters**: trainable parameters with the published classifier (1000 or 1001 classes, 10
  for the CIFAR and MNIST networks), without the auxiliary head; batch-norm moving statistics are
  not counted.  From the checkpoint variable lists in `tests/data/variables`.
* **multiply-adds**: forward multiply-adds of one image at the default size (convolutions and
  matrix products up to the logits), `ModelRecord.flops`; the tests recount them with TF's
  profiler.  A training step costs about three times as much.
* **aux**: an auxiliary classifier (`end_points['AuxLogits']`) in training; the trainer adds its
  loss with weight 0.4.
* **heavy**: slow to build or to run here; the tests check them at the default size without
  running them there, and train them (two steps) at their smallest size through the trainer.

Regenerate with `python tests/data/make_models_doc.py` (the tests fail when it is stale).

"""


def parameters(name):
    """Trainable parameters without the auxiliary head, from the expected-variable list."""
    total = 0
    with open(os.path.join(VARIABLES, name + ".txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            var, shape = line.split()
            if var.endswith(("moving_mean", "moving_variance")):
                continue
            if "AuxLogits" in var or var.startswith("aux_"):
                continue
            count = 1
            for d in shape.split(","):
                count *= int(d)
            total += count
    return total


def _si(value):
    if value >= 1e9:
        return "%.2f G" % (value / 1e9)
    if value >= 1e6:
        return "%.1f M" % (value / 1e6) if value >= 1e8 else "%.2f M" % (value / 1e6)
    return "%.0f k" % (value / 1e3)


def _slim_path(fn):
    """``resnet_v1.resnet_v1_50`` (a partial: the function it wraps)."""
    fn = getattr(fn, "func", fn)
    return "%s.%s" % (fn.__module__.replace("images.models.nets.", ""), fn.__name__)


def render():
    """The full text of docs/models.md."""
    lines = ["| network | slim function | image | preprocessing | classes | parameters | "
             "multiply-adds | aux | heavy | options |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in model_factory.list_models():
        r = model_factory.get_model_record(name)
        lines.append("| %s | `%s` | %d | %s | %d | %s | %s | %s | %s | %s |" % (
            name, _slim_path(r.network_fn), r.default_image_size, r.preprocessing_name, r.default_num_classes,
            _si(parameters(name)), _si(r.flops), "yes" if r.has_aux_logits else "",
            "yes" if r.heavy else "", ", ".join(r.options)))
    return HEAD + "\n".join(lines) + "\n"


def main(argv):
    text = render()
    if "--check" in argv:
        with open(DOC, encoding="utf-8") as f:
            if f.read() != text:
                print("docs/models.md is out of date: run python tests/data/make_models_doc.py")
                return 1
        return 0
    os.makedirs(os.path.dirname(DOC), exist_ok=True)
    with open(DOC + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(DOC + ".tmp", DOC)
    print("wrote %s (%d networks)" % (DOC, len(model_factory.list_models())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
