"""Transfer learning offline (notebook 02): the source task, label budgets, copying a backbone, linear heads,
oversampling."""

from __future__ import annotations

import threading

import keras
import numpy as np
import pandas as pd
import pytest

from helpers import config, datasets, losses, models, transfer
from helpers.errors import DataError


def test_source_labels_are_the_groups_any_finding_by_hand():
    labels = list(datasets.LABELS)
    y = np.zeros((3, len(labels)), "float32")
    y[0, labels.index("Mass")] = 1  # a focal lesion
    y[1, labels.index("Effusion")] = y[1, labels.index("Edema")] = 1  # pleura and opacity
    got = transfer.source_labels(y, labels)
    groups = list(transfer.SOURCE_GROUPS)
    want = np.zeros((3, len(groups)))
    want[0, [groups.index("any finding"), groups.index("focal lesion")]] = 1
    want[1, [groups.index("any finding"), groups.index("pleura"), groups.index("opacity")]] = 1
    np.testing.assert_array_equal(got, want)
    # every finding belongs to "any finding" and to exactly one of the other groups
    members = [m for g, ms in transfer.SOURCE_GROUPS.items() if g != "any finding" for m in ms]
    assert sorted(members) == sorted(labels)


def test_budget_subsets_keep_whole_patients_are_nested_and_near_the_fraction():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"patient_id": np.repeat(np.arange(200), rng.integers(1, 6, 200))})
    small, medium = (transfer.budget_subset(frame, f, seed=3) for f in (0.1, 0.3))
    for fraction, part in ((0.1, small), (0.3, medium)):
        assert abs(len(part) / len(frame) - fraction) < 0.02  # whole patients of at most 5 images overshoot a little
        counts = frame.patient_id.value_counts()
        kept = part.patient_id.value_counts()
        assert (kept == counts[kept.index]).all()  # no patient cut in two
    assert set(small.index) <= set(medium.index)
    assert transfer.budget_subset(frame, 1.0, seed=3) is frame


def test_oversampled_stream_reaches_the_requested_frequencies():
    rng = np.random.default_rng(1)
    y = (rng.random((600, 5)) < [0.3, 0.2, 0.05, 0.03, 0.02]).astype("float32")
    y[:, 4] = np.maximum(y[:, 4], y[:, 3] * (rng.random(600) < 0.5))  # finding 4 rides along with finding 3
    names = list("abcde")
    targets = {"c": 0.15, "d": 0.12, "e": 0.15}
    stream = losses.oversampled_dataset(np.arange(600), y, targets, names=names, seed=5)
    drawn = np.stack([labels for _, labels in stream.take(6000).as_numpy_iterator()])
    frequency = drawn.mean(axis=0)
    for key, wanted in targets.items():
        assert abs(frequency[names.index(key)] - wanted) < 0.02, (key, frequency)
    # the common findings are diluted, not lost
    assert 0.2 < frequency[0] < y[:, 0].mean() + 0.05


def test_oversampling_refuses_a_frequency_below_the_prevalence():
    y = np.zeros((100, 2), "float32")
    y[:40, 0] = 1
    y[:5, 1] = 1
    with pytest.raises(ValueError, match="only raise a finding above its prevalence"):
        losses.oversampling_weights(y, {0: 0.1})


@pytest.fixture(scope="module")
def small_densenet():
    return models.densenet121_classifier(14, 32)


def test_dense_block_table_reads_the_growth_rate_and_the_halving_transitions(small_densenet):
    table = models.dense_block_table(small_densenet)
    assert list(table["growth per layer"]) == [32, 32, 32, 32]
    assert list(table["channels out"]) == [64 + 6 * 32, 128 + 12 * 32, 256 + 24 * 32, 512 + 16 * 32]
    assert list(table["after transition"].iloc[:3]) == [128, 256, 512]  # compression 0.5
    assert table.loc["dense block 3", "keras layers"].startswith("conv4_")


def test_copy_backbone_moves_every_layer_but_the_head(small_densenet):
    source = models.densenet121_classifier(5, 32, name="source")
    copied = transfer.copy_backbone(source, small_densenet)
    assert copied > 100
    for name in ("conv1_conv", "conv4_block7_2_conv", "bn"):
        for a, b in zip(source.get_layer(name).get_weights(), small_densenet.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="share no layer"):
        transfer.copy_backbone(models.plain_cnn(32, batch_norm=False),
                               models.unet((32, 32, 1), base_filters=2, depth=1))


def test_linear_heads_rank_a_separable_finding_and_leave_an_absent_one_at_chance():
    rng = np.random.default_rng(2)
    y = (rng.random((80, 2)) < 0.3).astype("float32")
    y[:, 1] = 0  # no positive in training: nothing to learn
    features = rng.normal(size=(80, 6)) + 1.5 * y[:, :1]
    scores = transfer.linear_heads(features[:60], y[:60], features[60:])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[60:, 0], scores[:, 0]) > 0.85
    assert (scores[:, 1] == 0).all()


def test_findings_that_always_co_occur_get_the_nearest_reachable_mix_and_the_stream_follows_it():
    y = np.zeros((200, 3), "float32")
    y[:10, 1] = y[:10, 2] = 1  # findings 1 and 2 on the same ten images: their frequencies cannot differ
    y[10:80, 0] = 1
    with pytest.raises(DataError, match="occur together"):
        losses.oversampling_weights(y, {1: 0.2, 2: 0.3})
    weights = losses.oversampling_weights(y, {1: 0.2, 2: 0.3}, exact=False)
    expected = losses.expected_frequencies(y, weights, {1: 0.2, 2: 0.3})
    assert abs(expected[1] - 0.25) < 0.01 and abs(expected[2] - 0.25) < 0.01  # the least-squares compromise
    stream = losses.oversampled_dataset(np.arange(200), y, {1: 0.2, 2: 0.3}, exact=False, seed=3)
    drawn = np.stack([labels for _, labels in stream.take(4000).as_numpy_iterator()]).mean(axis=0)
    np.testing.assert_allclose(drawn, expected, atol=0.02)


def test_set_start_restores_the_weights_and_a_fresh_optimizer_without_recompiling():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="sigmoid")])
    model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    start = model.get_weights()
    x, y = np.random.default_rng(0).random((32, 3)), np.ones((32, 2))
    model.fit(x, y, epochs=3, verbose=0)
    assert int(model.optimizer.iterations) > 0 and not np.allclose(model.get_weights()[0], start[0])
    train_function = model.train_function
    transfer.set_start(model, start, 1e-3)
    assert int(model.optimizer.iterations) == 0
    assert all(np.allclose(a, b) for a, b in zip(model.get_weights(), start))
    assert all(not np.any(v.numpy()) for v in model.optimizer.variables if "learning_rate" not in v.path
               and "iteration" not in v.path)
    assert np.isclose(float(model.optimizer.learning_rate), 1e-3)
    model.fit(x, y, epochs=1, verbose=0)
    assert model.train_function is train_function  # the traced step was kept


def test_pretrained_backbone_waits_for_the_writer_and_loads_what_it_wrote(tmp_path):
    """make test runs notebooks 02 and 02b side by side: the second waits, then loads the first one's backbone."""
    pytest.importorskip("fcntl")  # POSIX only; on Windows both would pretrain
    cfg = config.Config(profile="smoke", cache_dir=tmp_path, seed=5)
    path = transfer.backbone_file(cfg, 32, 10, 1)
    path.parent.mkdir(parents=True)
    got = {}

    def second():
        got["model"], got["info"] = transfer.pretrained_backbone(cfg, image_size=32, patients=10, epochs=1)

    with transfer._one_writer(path):  # the first notebook, still pretraining
        reader = threading.Thread(target=second)
        reader.start()
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="written_by_the_first").save(path)
    reader.join(timeout=600)
    assert got["info"]["from_cache"] and got["model"].name == "written_by_the_first", got.get("info")
