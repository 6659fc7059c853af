"""TF Serving's test models, rebuilt: ``half_plus_two`` and ``half_plus_three``.

    python -m images.serving.example_models --output_dir=/tmp/models

writes ``/tmp/models/saved_model_half_plus_two/00000123`` (and ``00000124``) and
``/tmp/models/saved_model_half_plus_three/00000123``, SavedModels with the graphs and signatures of
the ones TF Serving's own tests and REST document use (tensorflow_serving/servables/tensorflow/
testdata): ``y = 0.5 x + 2`` (and ``+ 3``), read from a float tensor or parsed out of serialized
``tf.Example``s (features ``x`` and ``x2``, each one float).

half_plus_two's signatures: ``serving_default`` (predict, ``x`` [-1, 1] -> ``y``),
``regress_x_to_y``, ``regress_x_to_y2`` (``+ 3``), ``regress_x2_to_y3`` (its input is the float
tensor ``x2``, not examples), ``classify_x_to_y`` (``scores`` only).  half_plus_three:
``serving_default`` whose ``x`` and ``y`` have no recorded shape, and ``tensorflow/serving/regress``.
"""
import argparse
import os
import shutil

import tensorflow.compat.v1 as tf


def _feature_spec():
    return {"x": tf.FixedLenFeature([1], dtype=tf.float32),
            "x2": tf.FixedLenFeature([1], dtype=tf.float32, default_value=[0.0])}


def _info(tensor, shaped=True):
    info = tf.saved_model.utils.build_tensor_info(tensor)
    if not shaped:
        info.ClearField("tensor_shape")
    return info


def _signature(inputs, outputs, method):
    return tf.saved_model.signature_def_utils.build_signature_def(inputs, outputs, method)


def _write(export_dir, build):
    tmp = export_dir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with tf.Graph().as_default(), tf.Session() as sess:
        signatures, assets = build()
        sess.run(tf.global_variables_initializer())
        builder = tf.saved_model.builder.SavedModelBuilder(tmp)
        builder.add_meta_graph_and_variables(
            sess, [tf.saved_model.tag_constants.SERVING], signature_def_map=signatures,
            assets_collection=assets)
        builder.save()
    os.replace(tmp, export_dir)
    return export_dir


def half_plus_two(export_dir, b=2.0):
    """Writes TF Serving's half_plus_two (with ``b`` as its constant term) to ``export_dir``."""
    def build():
        a = tf.Variable(0.5, name="a")
        bias = tf.Variable(b, name="b")
        c = tf.Variable(3.0, name="c")
        serialized = tf.placeholder(tf.string, name="tf_example", shape=None)
        parsed = tf.parse_example(serialized, _feature_spec())
        # [-1, 1], as in TF Serving's copy, whatever rank the fed examples have.
        x = tf.identity(tf.reshape(parsed["x"], [-1, 1]), name="x")
        y = tf.identity(a * x + bias, name="y")
        y2 = tf.identity(a * x + c, name="y2")
        x2 = tf.identity(tf.reshape(parsed["x2"], [-1, 1]), name="x2")
        a2 = tf.Variable(0.5, name="a2")
        c2 = tf.Variable(3.0, name="c2")
        y3 = tf.identity(a2 * x2 + c2, name="y3")
        k = tf.saved_model.signature_constants
        regress = k.REGRESS_METHOD_NAME
        signatures = {
            "regress_x_to_y": _signature({k.REGRESS_INPUTS: _info(serialized)},
                                         {k.REGRESS_OUTPUTS: _info(y)}, regress),
            "regress_x_to_y2": _signature({k.REGRESS_INPUTS: _info(serialized)},
                                          {k.REGRESS_OUTPUTS: _info(y2)}, regress),
            "regress_x2_to_y3": _signature({k.REGRESS_INPUTS: _info(x2)},
                                           {k.REGRESS_OUTPUTS: _info(y3)}, regress),
            "classify_x_to_y": _signature({k.CLASSIFY_INPUTS: _info(serialized)},
                                          {k.CLASSIFY_OUTPUT_SCORES: _info(y)},
                                          k.CLASSIFY_METHOD_NAME),
            k.DEFAULT_SERVING_SIGNATURE_DEF_KEY: _signature({"x": _info(x)}, {"y": _info(y)},
                                                            k.PREDICT_METHOD_NAME),
        }
        return signatures, None
    return _write(export_dir, build)


def half_plus_three(export_dir):
    """Writes TF Serving's half_plus_three: shape-less ``x``/``y``, a regress signature named
    ``tensorflow/serving/regress``."""
    def build():
        a = tf.Variable(0.5, name="a")
        c = tf.Variable(3.0, name="c")
        serialized = tf.placeholder(tf.string, name="tf_example")
        parsed = tf.parse_example(serialized, _feature_spec())
        x = tf.placeholder_with_default(parsed["x"], shape=None, name="x")
        y = tf.add(a * x, c, name="y")
        k = tf.saved_model.signature_constants
        signatures = {
            k.DEFAULT_SERVING_SIGNATURE_DEF_KEY: _signature(
                {"x": _info(x, shaped=False)}, {"y": _info(y, shaped=False)},
                k.PREDICT_METHOD_NAME),
            k.REGRESS_METHOD_NAME: _signature(
                {k.REGRESS_INPUTS: _info(serialized, shaped=False)},
                {k.REGRESS_OUTPUTS: _info(tf.identity(y), shaped=False)},
                k.REGRESS_METHOD_NAME),
        }
        return signatures, None
    return _write(export_dir, build)


def write_all(output_dir):
    """Writes both models (half_plus_two in versions 123 and 124) under ``output_dir``."""
    two = os.path.join(output_dir, "saved_model_half_plus_two")
    three = os.path.join(output_dir, "saved_model_half_plus_three")
    os.makedirs(two, exist_ok=True)
    os.makedirs(three, exist_ok=True)
    half_plus_two(os.path.join(two, "00000123"))
    half_plus_two(os.path.join(two, "00000124"), b=2.0)
    half_plus_three(os.path.join(three, "00000123"))
    return two, three


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args()
    for path in write_all(args.output_dir):
        print(path)


if __name__ == "__main__":
    main()
