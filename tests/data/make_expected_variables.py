#!/usr/bin/env python
"""Writes ``tests/data/variables/<model>.txt``: the variables a network creates, with shapes.

    python tests/data/make_expected_variables.py               # every registered network
    python tests/data/make_expected_variables.py nasnet_large  # some

Each list is taken at the network's default image size, in training mode (auxiliary heads
included), with the class count of the published checkpoint: the variables of that checkpoint.

Where the list comes from:

* networks ``tf_slim.nets`` provides (AlexNet, OverFeat, VGG, Inception v1-v3, ResNet): from
  calling ``tf_slim.nets`` itself, not our wrappers, so the test compares the wrappers with it;
* networks written here (LeNet, CifarNet, Inception v4, Inception-ResNet-v2, MobileNets, NASNets,
  PNASNets): from our implementation, frozen once their layer structure was checked against the
  papers and TF-slim's checkpoint names and their parameter counts against independent published
  figures.  The exact counts of the Keras Applications ports of the same checkpoints (MobileNet v1
  4,253,864; MobileNet v2 3,538,984; NASNet-A Mobile 5,326,716 and Large 88,949,818;
  Inception-ResNet-v2 55,873,736) and the papers' figures stay checked by tests/test_models.py
  (``PUBLISHED_PARAMETERS``).  A later change that moves a name or a shape fails that test.

Files are written to a temporary name and renamed.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow.compat.v1 as tf  # noqa: E402
import tf_slim as slim  # noqa: E402
from tf_slim.nets import (alexnet, inception_v1, inception_v2, inception_v3, overfeat,  # noqa: E402
                          resnet_utils, resnet_v1, resnet_v2, vgg)

import images  # noqa: E402,F401  (compat shim)
from images.models import model_factory  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "variables")

# The reference builders for the networks tf_slim.nets provides: (builder, arg_scope).
TF_SLIM_REFERENCE = {
    "alexnet_v2": (alexnet.alexnet_v2, alexnet.alexnet_v2_arg_scope),
    "overfeat": (overfeat.overfeat, overfeat.overfeat_arg_scope),
    "vgg_a": (vgg.vgg_a, vgg.vgg_arg_scope),
    "vgg_16": (vgg.vgg_16, vgg.vgg_arg_scope),
    "vgg_19": (vgg.vgg_19, vgg.vgg_arg_scope),
    "inception_v1": (inception_v1.inception_v1, inception_v1.inception_v1_arg_scope),
    "inception_v2": (inception_v2.inception_v2, inception_v2.inception_v2_arg_scope),
    "inception_v3": (inception_v3.inception_v3, inception_v3.inception_v3_arg_scope),
}
for _depth in (50, 101, 152, 200):
    TF_SLIM_REFERENCE["resnet_v1_%d" % _depth] = (getattr(resnet_v1, "resnet_v1_%d" % _depth),
                                                  resnet_utils.resnet_arg_scope)
    TF_SLIM_REFERENCE["resnet_v2_%d" % _depth] = (getattr(resnet_v2, "resnet_v2_%d" % _depth),
                                                  resnet_utils.resnet_arg_scope)


def variables_of(name):
    """``[(name, shape)]`` of the reference build of ``name`` (see the module docstring)."""
    record = model_factory.get_model_record(name)
    size = record.default_image_size
    with tf.Graph().as_default():
        tf.train.get_or_create_global_step()
        images_in = tf.placeholder(tf.float32, [1, size, size, 3])
        if name in TF_SLIM_REFERENCE:
            builder, arg_scope = TF_SLIM_REFERENCE[name]
            with slim.arg_scope(arg_scope()):
                builder(images_in, num_classes=record.default_num_classes, is_training=True)
        else:
            model_factory.get_network_fn(name, record.default_num_classes, is_training=True)(
                images_in)
        return [(v.op.name, v.shape.as_list()) for v in tf.global_variables()
                if v.op.name != "global_step"]


def source_of(name):
    if name in TF_SLIM_REFERENCE:
        builder = TF_SLIM_REFERENCE[name][0]
        return "tf_slim.nets: %s.%s" % (builder.__module__, builder.__name__)
    return "images.models (checked against published parameter counts)"


def write(name):
    record = model_factory.get_model_record(name)
    variables = variables_of(name)
    total = sum(int(_prod(shape)) for _, shape in variables)
    lines = ["# %s: variables at %dx%d, training mode, %d classes" % (
                 name, record.default_image_size, record.default_image_size,
                 record.default_num_classes),
             "# source: %s" % source_of(name),
             "# %d variables, %d values" % (len(variables), total)]
    lines += ["%s %s" % (var, ",".join(str(d) for d in shape)) for var, shape in variables]
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name + ".txt")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    print("%-20s %5d variables %12d values  (%s)" % (name, len(variables), total, source_of(name)))


def _prod(shape):
    out = 1
    for d in shape:
        out *= d
    return out


if __name__ == "__main__":
    for model in sys.argv[1:] or model_factory.list_models():
        write(model)
