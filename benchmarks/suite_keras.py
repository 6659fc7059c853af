"""resnet_v1_50 (our trainer's step) beside tf.keras.applications.ResNet50 with model.fit.

Same synthetic 224x224 batches, float32, same process, measured alternately (A B A B) so the
machine's drift hits both.  Model-FLOPs utilisation = training FLOPs per image (TF's profiler on
our training graph) x images/s / the float32 peak of a large matmul measured in the same run.
"""
import time

import numpy as np

from benchmarks import common

BATCH = 16
SIZE = 224


def keras_rate(steps, warmup, batch=BATCH, size=SIZE):
    """Images/s of ``ResNet50.fit`` on one fixed synthetic batch repeated."""
    import tensorflow as tf2
    tf2.keras.backend.clear_session()
    model = tf2.keras.applications.ResNet50(weights=None, input_shape=(size, size, 3),
                                            classes=1000)
    model.compile(optimizer=tf2.keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=tf2.keras.losses.SparseCategoricalCrossentropy(from_logits=False))
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    y = rng.randint(0, 1000, batch)
    ds = tf2.data.Dataset.from_tensors((x, y)).repeat()
    stamps = []

    class Clock(tf2.keras.callbacks.Callback):
        def on_train_batch_end(self, batch_index, logs=None):
            stamps.append(time.perf_counter())

    model.fit(ds, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[Clock()])
    per_step = np.diff(stamps[warmup - 1:])
    return batch / float(np.median(per_step))


def run(args):
    steps, warmup = (3, 1) if args.quick else (8, 2)
    peak = common.matmul_peak_flops()
    ours, keras, flops = [], [], None
    for _ in range(1 if args.quick else 2):
        rate, f = common.zoo_training_rate("resnet_v1_50", BATCH, SIZE, steps=steps,
                                           warmup=warmup, measure_flops=flops is None)
        flops = flops or f
        ours.append(rate)
        keras.append(keras_rate(steps, warmup))
    ours_rate, keras_rate_ = float(np.median(ours)), float(np.median(keras))
    # Keras's ResNet50 does slightly different work (stride in the first 1x1 of a block, biases on
    # convolutions); compare per FLOP with each model's own count.
    keras_flops = _keras_training_flops()
    rows = [
        ["fastnn resnet_v1_50 (tf.compat.v1 graph)", ours_rate, flops / 1e9,
         100 * ours_rate * flops / peak, 1.0],
        ["tf.keras ResNet50 (model.fit)", keras_rate_, keras_flops / 1e9,
         100 * keras_rate_ * keras_flops / peak, keras_rate_ * keras_flops / (ours_rate * flops)],
    ]
    common.print_table(
        "ResNet-50 training, fp32, batch %d, %dx%d, this CPU (matmul peak %.0f GFLOP/s)"
        % (BATCH, SIZE, SIZE, peak / 1e9),
        ["model", "images/s", "train GFLOPs/image", "MFU %", "FLOP rate vs fastnn"], rows)
    print("\nfastnn / keras images/s ratio: %.2f; per FLOP: %.2f"
          % (ours_rate / keras_rate_, (ours_rate * flops) / (keras_rate_ * keras_flops)))


def _keras_training_flops(size=SIZE):
    """Training FLOPs per image of Keras's ResNet50: 3x the forward count of its graph."""
    import tensorflow as tf2
    model = tf2.keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))
    forward = tf2.function(model).get_concrete_function(
        tf2.TensorSpec([1, size, size, 3], tf2.float32))
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)
    frozen = convert_variables_to_constants_v2(forward)
    return 3.0 * common.graph_flops(frozen.graph)
