"""resnet_v1_50 (our trainer's step) beside tf.keras.applications.ResNet50 with model.fit.

Same synthetic 224x224 batches, float32, same process, measured alternately (A B A B) so the
machine's drift hits both.  Both models are charged by one definition of model FLOPs: a training
step costs 3x the forward pass, and the forward pass is its convolutions and matrix products
(2 FLOPs per multiply-add, counted on each model's own graph by ``images.models.flops``), as in
the usual model-FLOPs-utilisation figure.  Utilisation = model FLOPs per image x images/s / the
float32 peak of a large matmul measured in the same run.
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
    ours, keras = [], []
    for _ in range(1 if args.quick else 2):
        rate, _ = common.zoo_training_rate("resnet_v1_50", BATCH, SIZE, steps=steps,
                                           warmup=warmup, measure_flops=False)
        ours.append(rate)
        keras.append(keras_rate(steps, warmup))
    ours_rate, keras_rate_ = float(np.median(ours)), float(np.median(keras))
    # The two ResNet-50s differ a little (Keras strides the first 1x1 of a block and puts biases
    # on its convolutions): each is charged its own count.
    flops, keras_flops = _our_training_flops(), _keras_training_flops()
    rows = [
        ["fastnn resnet_v1_50 (tf.compat.v1 graph)", ours_rate, flops / 1e9,
         100 * ours_rate * flops / peak, 1.0],
        ["tf.keras ResNet50 (model.fit)", keras_rate_, keras_flops / 1e9,
         100 * keras_rate_ * keras_flops / peak, keras_rate_ * keras_flops / (ours_rate * flops)],
    ]
    common.print_table(
        "ResNet-50 training, fp32, batch %d, %dx%d, this CPU (matmul peak %.0f GFLOP/s)"
        % (BATCH, SIZE, SIZE, peak / 1e9),
        ["model", "images/s", "model GFLOPs/image (3x forward)", "MFU %",
         "FLOP rate vs fastnn"], rows)
    print("\nfastnn / keras images/s ratio: %.2f; per FLOP: %.2f"
          % (ours_rate / keras_rate_, (ours_rate * flops) / (keras_rate_ * keras_flops)))


def _our_training_flops(size=SIZE):
    """Model FLOPs of one training image of our resnet_v1_50: 3 x 2 x forward multiply-adds."""
    from images.models import flops as flops_lib
    multiply_adds, _ = flops_lib.count_multiply_adds("resnet_v1_50", size, 1000)
    return 6.0 * multiply_adds


def _keras_training_flops(size=SIZE):
    """The same for Keras's ResNet50, counted on its own graph."""
    import tensorflow.compat.v1 as tf1
    from images.models import flops as flops_lib
    with tf1.Graph().as_default():
        model = tf1.keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))
        logits = model(tf1.zeros([1, size, size, 3]))
        return 6.0 * flops_lib.multiply_adds_to(logits)
