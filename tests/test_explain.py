"""explain: saliency methods against tf-keras-vis, hand examples and the messages for bad inputs."""


import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import explain


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 1), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.Activation("relu", name="relu1")(x)
    x = keras.layers.MaxPooling2D(4, name="pool")(x)  # an 8x8 feature map, upsampled 4x by Grad-CAM
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(3, activation="sigmoid", name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny")


@pytest.fixture(scope="module")
def segmenter():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", name="vessels")(x)
    return keras.Model(inputs, outputs, name="tiny_unet")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(size=(4, 32, 32, 1)).astype("float32")


def test_grad_cam_matches_tf_keras_vis(classifier, images):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.scores import CategoricalScore

    ours = explain.grad_cam(classifier, images, 1, layer_name="features", upsampling="align_corners")
    theirs = Gradcam(classifier)(CategoricalScore([1] * 4), images, penultimate_layer="features", seek_penultimate_conv_layer=False)
    assert ours.shape == theirs.shape == (4, 32, 32)
    assert np.abs(ours - theirs).max() < 1e-4
    # The default half-pixel upsampling differs from tf-keras-vis's corner-aligned one, but not at the feature grid.
    assert np.abs(explain.grad_cam(classifier, images, 1) - theirs).max() > 1e-3


def test_vanilla_saliency_matches_tf_keras_vis(classifier, images):
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.scores import CategoricalScore

    ours = explain.vanilla_gradients(classifier, images, 2)
    theirs = Saliency(classifier)(CategoricalScore([2] * 4), images)
    assert np.abs(ours - theirs).max() < 1e-4


def test_integrated_gradients_completeness(classifier, images):
    for baseline in explain.BASELINES:
        result = explain.integrated_gradients(classifier, images, 0, baseline=baseline, steps=64)
        assert result.attributions.shape == images.shape
        assert np.allclose(result.scores, classifier(images)[:, 0], atol=1e-5)
        assert result.complete.all(), (baseline, result.relative_error)
    with pytest.warns(UserWarning, match="completeness off"):
        explain.integrated_gradients(classifier, images, 0, steps=2, tolerance=1e-6)


def test_guided_relu_on_a_hand_example():
    x = tf.constant([-1.0, 2.0, 3.0, 0.5])
    upstream = tf.constant([1.0, -1.0, 2.0, 0.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = explain.guided_relu(x)
    assert np.allclose(y, [0.0, 2.0, 3.0, 0.5])
    # Plain ReLU would pass [0, -1, 2, 0]: guided also blocks the negative incoming gradient.
    assert np.allclose(tape.gradient(y, x, output_gradients=upstream), [0.0, 0.0, 2.0, 0.0])


def test_guided_model_leaves_the_original_untouched(classifier, images):
    guided = explain.guided_model(classifier)
    assert guided is not classifier
    assert classifier.get_layer("relu1").activation is keras.activations.relu
    assert guided.get_layer("relu1").activation is explain.guided_relu
    assert np.allclose(guided(images), classifier(images), atol=1e-6)
    plain = explain.vanilla_gradients(classifier, images, 1, normalize_map=False)
    assert not np.allclose(explain.guided_backprop(classifier, images, 1, normalize_map=False), plain)


def test_zero_map_warns_and_gives_zeros(classifier, images):
    with pytest.warns(UserWarning, match="flat"):
        maps = explain.normalize(np.zeros((2, 8, 8)))
    assert np.array_equal(maps, np.zeros((2, 8, 8)))
    # A class whose weights are all zero has no gradient at all: zeros and a warning, never NaN.
    zero = keras.models.clone_model(classifier)
    zero.set_weights([np.zeros_like(w) for w in classifier.get_weights()])
    with pytest.warns(UserWarning, match="flat"):
        cam = explain.grad_cam(zero, images, 0)
    assert np.isfinite(cam).all() and not cam.any()


def test_segmentation_region_score(segmenter, images):
    box = (8, 8, 8, 8)
    maps = explain.vanilla_gradients(segmenter, images, region=box, normalize_map=False)
    # Two 3x3/1x1 convolutions see one pixel around the box: nothing farther away gets gradient.
    assert maps[:, :6].max() == 0 and maps[:, 8:16, 8:16].max() > 0
    mask = explain.box_mask(box, (32, 32))
    result = explain.integrated_gradients(segmenter, images, region=mask, steps=64)
    expected = (segmenter(images)[..., 0].numpy() * mask).sum(axis=(1, 2))
    assert np.allclose(result.scores, expected, rtol=1e-5) and result.complete.all()
    cam = explain.grad_cam(segmenter, images, region=box)
    assert cam.shape == (4, 32, 32) and explain.last_conv_layer(segmenter) == "conv"


def test_bad_inputs_have_clear_messages(classifier, segmenter, images):
    with pytest.raises(explain.ExplainError, match="no layer named 'nope'.*features"):
        explain.grad_cam(classifier, images, 0, layer_name="nope")
    with pytest.raises(explain.ExplainError, match="'avg_pool' is not convolutional.*features"):
        explain.grad_cam(classifier, images, 0, layer_name="avg_pool")
    with pytest.raises(explain.ExplainError, match="class_index 3 is out of range.*3 outputs"):
        explain.vanilla_gradients(classifier, images, 3)
    with pytest.raises(explain.ExplainError, match=r"images are \(16, 16, 1\) but tiny takes \(32, 32, 1\)"):
        explain.grad_cam(classifier, images[:, :16, :16], 0)
    with pytest.raises(explain.ExplainError, match=r"image\[None\]"):
        explain.grad_cam(classifier, images[0], 0)
    with pytest.raises(explain.ExplainError, match="pass region="):
        explain.grad_cam(segmenter, images, 0)
    inner = keras.Model(classifier.input, classifier.get_layer("features").output, name="backbone")
    inputs = keras.Input((32, 32, 1))
    nested = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inner(inputs))))
    with pytest.raises(explain.ExplainError, match="nested.*backbone.*Build it flat"):
        explain.grad_cam(nested, images, 0)


def test_sigmoid_as_softmax_gives_back_the_probability(classifier, images):
    two_way = explain.sigmoid_as_softmax(classifier, 2)
    assert np.allclose(keras.ops.softmax(two_way(images))[:, 0], classifier(images)[:, 2], atol=1e-5)
    # Softmax straight over the three sigmoids (what ScoreCAM does) is not the probability.
    assert not np.allclose(keras.ops.softmax(classifier(images))[:, 2], classifier(images)[:, 2], atol=1e-2)


def test_randomized_restores_weights_and_changes_maps(classifier, images):
    before = classifier.get_weights()
    original = explain.grad_cam(classifier, images, 1)
    with explain.randomized(classifier, ["predictions", "conv2"], seed=3) as changed:
        assert changed == ["predictions", "conv2"]
        random_map = explain.grad_cam(classifier, images, 1)
    assert all(np.array_equal(a, b) for a, b in zip(before, classifier.get_weights()))
    assert explain.rank_correlation(original, original).min() > 0.999
    assert explain.rank_correlation(original, random_map).mean() < 0.9


def test_heat_in_box_and_pointing_game():
    heatmap = np.zeros((1, 10, 10))
    heatmap[0, 2, 3] = 3.0
    heatmap[0, 8, 8] = 1.0
    assert np.allclose(explain.heat_in_box(heatmap, [(2, 1, 3, 3)]), 0.75)
    assert explain.pointing_game(heatmap, [(2, 1, 3, 3)]).tolist() == [True]
    assert explain.pointing_game(heatmap, [(7, 7, 3, 3)]).tolist() == [False]
    assert explain.pointing_game(np.zeros((1, 10, 10)), [(0, 0, 10, 10)]).tolist() == [False]
    with pytest.raises(explain.ExplainError, match="non-negative"):
        explain.heat_in_box(-heatmap, [(0, 0, 1, 1)])
