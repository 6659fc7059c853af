"""The preprocessing registry: every function in train and eval mode, grey option, determinism,
and each one's transform checked against a NumPy reference where it is deterministic."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import images  # noqa: F401  (compat shim)
from images.preprocessing import preprocessing_factory, vgg_preprocessing

NAMES = preprocessing_factory.list_preprocessing()


def _image(height, width, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (height, width, 3)).astype(np.uint8)


def _apply(name, image, size, is_training, use_grayscale=False, runs=1, **kwargs):
    """Output(s) of the registered function on ``image``; several runs share one graph."""
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        fn = preprocessing_factory.get_preprocessing(name, is_training=is_training,
                                                     use_grayscale=use_grayscale)
        out = fn(tf.constant(image), size, size, **kwargs)
        with tf.Session() as sess:
            return [sess.run(out) for _ in range(runs)], out


def test_registry_lists_the_four_and_rejects_others():
    assert NAMES == ["cifarnet", "inception", "lenet", "vgg"]
    with pytest.raises(ValueError, match="valid names: cifarnet, inception, lenet, vgg"):
        preprocessing_factory.get_preprocessing("alexnet")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("is_training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("use_grayscale", [False, True], ids=["rgb", "grey"])
def test_shapes_and_dtype(name, is_training, use_grayscale):
    channels = 1 if use_grayscale else 3
    for shape in ((40, 60), (64, 48)):
        (out,), tensor = _apply(name, _image(*shape), 32, is_training, use_grayscale)
        assert tensor.dtype == tf.float32
        assert tensor.shape.as_list() == [32, 32, channels]
        assert out.shape == (32, 32, channels) and np.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_eval_is_deterministic_and_training_is_random(name):
    image = _image(48, 40, seed=3)
    evals, _ = _apply(name, image, 32, False, runs=3)
    again, _ = _apply(name, image, 32, False)
    for out in evals[1:] + again:
        np.testing.assert_array_equal(out, evals[0])
    trains, _ = _apply(name, image, 32, True, runs=4)
    if name == "lenet":  # LeNet has no augmentation: training equals evaluation
        for out in trains:
            np.testing.assert_array_equal(out, evals[0])
    else:
        assert any(not np.array_equal(trains[0], out) for out in trains[1:])


@pytest.mark.parametrize("name", NAMES)
def test_grey_is_the_luma_of_the_colour_result(name):
    """Grey output is the luma of the colour pipeline (before cifarnet's standardisation)."""
    image = _image(36, 36, seed=5)
    (grey,), _ = _apply(name, image, 32, False, use_grayscale=True)
    (colour,), _ = _apply(name, image, 32, False)
    luma = colour @ np.array([0.2989, 0.5870, 0.1140], np.float32)
    if name == "cifarnet":  # standardised after the conversion: unit variance
        assert abs(grey.mean()) < 1e-4 and grey.std() == pytest.approx(1.0, abs=1e-3)
        luma = (luma - luma.mean()) / luma.std()
        grey = (grey - grey.mean()) / grey.std()
    np.testing.assert_allclose(grey[..., 0], luma, atol=2e-2)


def test_inception_eval_crops_the_centre_and_scales_to_unit_range():
    image = _image(64, 64, seed=7)
    # 0.875 of 64 is the central 56x56 (rows 4..59); at 56x56 the resize is the identity.
    (out,), _ = _apply("inception", image, 56, False)
    expected = (image[4:60, 4:60].astype(np.float32) / 255.0 - 0.5) * 2.0
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_inception_eval_resize_is_tf_slims_bilinear():
    """TF1 ``resize_bilinear`` (no half-pixel centres): output pixel i samples input i * scale."""
    image = np.tile(np.arange(0, 256, 16, dtype=np.uint8)[None, :, None], (16, 1, 3))
    (out,), _ = _apply("inception", image, 28, False)
    # The 14 central columns (1..14) stretched to 28 start exactly at column 1.
    row = (out[0, :, 0] / 2.0 + 0.5) * 255.0
    assert row[0] == pytest.approx(16.0, abs=1e-3)
    assert row[2] == pytest.approx(32.0, abs=1e-3)  # 2 * 14 / 28 = column 2 exactly
    assert row[1] == pytest.approx(24.0, abs=1e-3)


def test_inception_train_stays_in_range_and_respects_boxes():
    image = np.zeros((64, 64, 3), np.uint8)
    image[:32] = 255  # top half white, bottom half black
    with tf.Graph().as_default():
        tf.set_random_seed(2)
        box = tf.constant([[[0.0, 0.0, 0.5, 1.0]]])  # the white half
        fn = preprocessing_factory.get_preprocessing("inception", is_training=True)
        out = fn(tf.constant(image), 24, 24, bbox=box)
        with tf.Session() as sess:
            outs = [sess.run(out) for _ in range(8)]
    for o in outs:
        assert o.min() >= -1.0 and o.max() <= 1.0
        # Every crop covers at least 10% of the white box, so some pixel is bright.
        assert o.max() > 0.0


def test_vgg_eval_resizes_the_smaller_side_to_256_and_crops_the_centre():
    image = _image(256, 320, seed=8)  # smaller side already 256: no resize
    (out,), _ = _apply("vgg", image, 224, False)
    expected = image[16:240, 48:272].astype(np.float32) - np.array(vgg_preprocessing.MEANS)
    np.testing.assert_allclose(out, expected, atol=1e-3)


def test_vgg_train_crops_from_a_resize_between_256_and_512():
    image = np.zeros((300, 300, 3), np.uint8)
    image[150:, :] = 255
    (outs), _ = _apply("vgg", image, 224, True, runs=6)
    for out in outs:
        restored = out + np.array(vgg_preprocessing.MEANS, np.float32)
        assert restored.min() >= -1e-3 and restored.max() <= 255.0 + 1e-3
    # A 224 crop of a 256..512 resize of a two-band image shows the edge in some crops.
    assert any(np.ptp(out) > 200 for out in outs)


def test_cifarnet_eval_is_the_standardised_centre():
    image = _image(36, 36, seed=9)
    (out,), _ = _apply("cifarnet", image, 32, False)
    centre = image[2:34, 2:34].astype(np.float32)
    expected = (centre - centre.mean()) / max(centre.std(), 1.0 / np.sqrt(centre.size))
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_cifarnet_train_pads_crops_and_standardises():
    (outs), _ = _apply("cifarnet", _image(32, 32, seed=10), 32, True, runs=4)
    for out in outs:
        assert abs(out.mean()) < 1e-4 and out.std() == pytest.approx(1.0, abs=1e-3)


def test_lenet_maps_pixels_to_minus_one_one():
    image = _image(28, 28, seed=11)
    (out,), _ = _apply("lenet", image, 28, False)
    np.testing.assert_allclose(out, (image.astype(np.float32) - 128.0) / 128.0, atol=1e-6)
