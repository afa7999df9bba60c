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

    # tf-keras-vis differentiates the probability: score="probability" reproduces it
    ours = explain.grad_cam(classifier, images, 1, layer_name="features", upsampling="align_corners",
                            score="probability")
    theirs = Gradcam(classifier)(CategoricalScore([1] * 4), images, penultimate_layer="features",
                                 seek_penultimate_conv_layer=False)
    assert ours.shape == theirs.shape == (4, 32, 32)
    assert np.abs(ours - theirs).max() < 1e-4
    # the logit's map (the default) is the probability's divided by p (1 - p) > 0, the same once min-max scaled,
    # up to the scaling's epsilon (1e-7 against a raw maximum that differs by that factor)
    on_logit = explain.grad_cam(classifier, images, 1, layer_name="features", upsampling="align_corners")
    assert np.abs(on_logit - theirs).max() < 1e-3
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


def test_a_model_set_to_run_eagerly_gives_the_same_maps_without_tracing(classifier, images):
    methods = {
        "gradients": lambda m: explain.vanilla_gradients(m, images, 1),
        "guided": lambda m: explain.guided_backprop(m, images, 1),
        "Grad-CAM": lambda m: explain.grad_cam(m, images, 1),
        "Grad-CAM++": lambda m: explain.grad_cam_plus_plus(m, images, 1),
        "IG": lambda m: explain.integrated_gradients(m, images, 1, steps=8).attributions,
    }
    eager = keras.models.clone_model(classifier)  # a new model: nothing compiled for it yet
    eager.set_weights(classifier.get_weights())
    eager.run_eagerly = True  # as for Keras's predict: a few images, each map once, cost less than a trace
    for name, method in methods.items():
        assert np.allclose(method(eager), method(classifier), atol=1e-5), name
    assert explain.gradient_function(eager).experimental_get_tracing_count() == 0
    assert explain._cam_function(eager, "features").experimental_get_tracing_count() == 0
    assert explain.gradient_function(classifier).experimental_get_tracing_count() == 1


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


# --- hand computations on a tiny model with fixed weights ------------------------------------
#
# image (4x4x1) -> 1x1 conv, 2 channels (z = w x + b) -> ReLU ("features", A) -> flatten -> one sigmoid.
# The logit S = sum V * A + c is linear in A, so every gradient has a closed form in numpy:
# dS/dA = V, dp/dA = p (1 - p) V, dp/dx = p (1 - p) sum_k V_k w_k [z_k > 0].

_W, _B = np.array([1.0, -0.5], np.float32), np.array([-0.3, 0.4], np.float32)
_V = np.random.default_rng(7).normal(size=(4, 4, 2)).astype(np.float32)  # mixed signs, varies over space
_C = 0.1


def _tiny(activation="sigmoid"):
    inputs = keras.Input((4, 4, 1))
    z = keras.layers.Conv2D(2, 1, name="conv")(inputs)
    a = keras.layers.Activation("relu", name="features")(z)
    outputs = keras.layers.Dense(1, activation=activation, name="predictions")(keras.layers.Flatten(name="flat")(a))
    model = keras.Model(inputs, outputs, name=f"tiny_{activation}")
    model.get_layer("conv").set_weights([_W.reshape(1, 1, 1, 2), _B])
    model.get_layer("predictions").set_weights([_V.reshape(32, 1), np.array([_C], np.float32)])
    return model


def _by_hand(x):
    """z, A, p and the two gradients of p for a batch x (n, 4, 4, 1), in float64."""
    x = x[..., 0].astype(np.float64)
    z = x[..., None] * _W + _B
    a = np.maximum(z, 0)
    p = 1 / (1 + np.exp(-((a * _V).sum(axis=(1, 2, 3)) + _C)))
    pq = (p * (1 - p))[:, None, None]
    plain = pq * (_V * _W * (z > 0)).sum(-1)
    guided = pq * (_V * _W * (z > 0) * (_V > 0)).sum(-1)
    return z, a, p, np.abs(plain), np.abs(guided)


@pytest.fixture(scope="module")
def tiny_images():
    return np.random.default_rng(3).uniform(-1, 1, size=(3, 4, 4, 1)).astype("float32")


def test_tiny_model_matches_the_hand_forward_pass(tiny_images):
    _, _, p, _, _ = _by_hand(tiny_images)
    assert np.allclose(_tiny()(tiny_images).numpy()[:, 0], p, atol=1e-6)


def test_grad_cam_plus_plus_matches_the_hand_formula_on_the_logit(tiny_images):
    _, a, _, _, _ = _by_hand(tiny_images)
    g = np.broadcast_to(_V, a.shape)  # dS/dA: the logit's gradient, not the probability's
    alpha = g**2 / (2 * g**2 + g**3 * a.sum(axis=(1, 2), keepdims=True))
    alpha /= np.where(g > 0, alpha, 0).sum(axis=(1, 2), keepdims=True)  # over positive gradients only
    weights = (np.maximum(g, 0) * alpha).sum(axis=(1, 2), keepdims=True)
    expected = np.maximum((weights * a).sum(-1), 0)
    for model in (_tiny("sigmoid"), _tiny("linear")):  # the sigmoid head is explained by its logit
        ours = explain.grad_cam_plus_plus(model, tiny_images, 0, layer_name="features", normalize_map=False)
        assert np.allclose(ours, expected, rtol=1e-4, atol=1e-6), (model.name, np.abs(ours - expected).max())
    # On the probability (p (1 - p) V) the closed form gives another map: this is what the logit fixes.
    pq = _by_hand(tiny_images)[2] * (1 - _by_hand(tiny_images)[2])
    gp = g * pq[:, None, None, None]
    alpha_p = gp**2 / (2 * gp**2 + gp**3 * a.sum(axis=(1, 2), keepdims=True))
    alpha_p /= np.where(gp > 0, alpha_p, 0).sum(axis=(1, 2), keepdims=True)
    on_probability = np.maximum(((np.maximum(gp, 0) * alpha_p).sum(axis=(1, 2), keepdims=True) * a).sum(-1), 0)
    scale = lambda m: m / m.max(axis=(1, 2), keepdims=True)
    assert np.abs(scale(on_probability) - scale(expected)).max() > 1e-2


def test_guided_grad_cam_matches_the_hand_product(tiny_images):
    model = _tiny()
    _, a, p, _, guided = _by_hand(tiny_images)
    pq = (p * (1 - p))[:, None, None, None]
    cam = np.maximum(((pq * _V).mean(axis=(1, 2), keepdims=True) * a).sum(-1), 0)  # Grad-CAM on p; 4x4 -> 4x4
    ours = explain.guided_grad_cam(model, tiny_images, 0, layer_name="features", normalize_map=False)
    assert np.allclose(ours, cam * guided, rtol=1e-4, atol=1e-7), np.abs(ours - cam * guided).max()
    assert np.allclose(explain.guided_backprop(model, tiny_images, 0, normalize_map=False), guided, rtol=1e-4,
                       atol=1e-7)


def test_smoothgrad_is_the_mean_of_hand_gradients_over_the_same_noise(tiny_images):
    model, samples, level, seed = _tiny(), 5, 0.3, 11
    rng = np.random.default_rng(seed)  # the noise smoothgrad draws: samples x images, std = level x range
    sigma = level * (tiny_images.max(axis=(1, 2, 3), keepdims=True) - tiny_images.min(axis=(1, 2, 3), keepdims=True))
    noisy = tiny_images[None] + rng.normal(size=(samples,) + tiny_images.shape).astype(np.float32) * sigma[None]
    expected = np.mean([_by_hand(copy)[3] for copy in noisy], axis=0)  # mean of |gradient|, not |mean gradient|
    ours = explain.smoothgrad(explain.vanilla_gradients, model, tiny_images, 0, samples=samples, noise_level=level,
                              seed=seed, normalize_map=False)
    assert np.allclose(ours, expected, rtol=1e-4, atol=1e-7), np.abs(ours - expected).max()
    # One noisy copy is not the mean: the average really is over the samples.
    assert np.abs(_by_hand(noisy[0])[3] - expected).max() > 1e-3


def test_logit_head_is_required_for_grad_cam_plus_plus(tiny_images):
    inputs = keras.Input((4, 4, 1))
    features = keras.layers.Conv2D(2, 1, activation="relu", name="features")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pooled")(features)
    model = keras.Model(inputs, pooled, name="no_head")
    with pytest.raises(explain.ExplainError, match="'pooled'.*no activation to strip"):
        explain.grad_cam_plus_plus(model, tiny_images, 0, layer_name="features")


# --- the pointing game without argmax's top-left bias ------------------------------------------

def test_pointing_game_counts_a_plateau_straddling_the_box_edge():
    heatmap = np.zeros((1, 10, 10))
    heatmap[0, :4, :4] = 1.0  # a flat maximum: the 4x4 top-left corner
    box = (2, 2, 4, 4)  # covers pixels 2..5: the plateau's pixels (2..3, 2..3) are inside, (0, 0) is not
    assert explain.pointing_game(heatmap, [box]).tolist() == [True]
    assert explain.pointing_game(heatmap, [(5, 5, 4, 4)]).tolist() == [False]  # the plateau misses entirely
    # An edge cell upsampled bilinearly is such a plateau from the border to the cell centre.
    cells = np.zeros((1, 2, 2), np.float32)
    cells[0, 0, 1] = 1.0  # the top-right cell of a 2x2 map
    big = explain.upsample(cells, (64, 64))
    assert explain.pointing_game(big, [(44, 10, 8, 8)]).tolist() == [True]  # argmax would pick (0, 48): outside
    assert explain.pointing_game(big, [(10, 10, 8, 8)]).tolist() == [False]
    assert np.isclose(explain.maximal_pixels(big[0]).sum(), 16 * 16)


def test_pointing_ceiling_of_a_grid():
    # 4x4 cells over 64 px: centres at 8, 24, 40, 56. A 4-px box between two inner centres can never be hit;
    # one at an edge cell's plateau (border to centre) can.
    hits = explain.pointing_ceiling([(13, 13, 4, 4), (1, 1, 4, 4), (22, 22, 4, 4)], 4, (64, 64))
    assert hits.tolist() == [False, True, True]


def test_localisation_scores_refuse_nan_maps():
    from helpers.errors import DataError

    heatmap = np.zeros((1, 4, 4))
    heatmap[0, 1, 2] = np.nan
    with pytest.raises(DataError, match=r"pointing_game: heatmaps.*NaN.*\(0, 1, 2\)"):
        explain.pointing_game(heatmap, [(0, 0, 2, 2)])
    with pytest.raises(DataError, match="heat_in_box: heatmaps.*NaN"):
        explain.heat_in_box(heatmap, [(0, 0, 2, 2)])
