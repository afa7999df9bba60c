"""Nuclei data (notebook 08): the synthetic Data Science Bowl layout, the reader and its checks, the split, the
two-output U-Net."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from helpers import cells, config, instances, synthetic
from helpers.synthetic import cells as synthetic_cells
from helpers.errors import DataError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return synthetic_cells.write_nuclei(tmp_path_factory.mktemp("dsb"), images=6, image_size=96, seed=7)


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.png"))}


def test_layout_and_round_trip(folder):
    dataset = cells.read_nuclei(folder)  # the folder holding stage1_train/
    assert dataset.root == folder / "stage1_train" and len(dataset.records) == 6
    for record in dataset.records:
        assert (len(record.id) == 64
                and record.image == folder / "stage1_train" / record.id / "images" / f"{record.id}.png")
        with Image.open(record.image) as img:
            assert img.mode == "RGBA"  # as the real fluorescence images
        index = [synthetic_cells.image_id(7, i) for i in range(6)].index(record.id)
        grey, truth = synthetic_cells.render(7, index, 96)
        image, labels = cells.load_nuclei(record)
        np.testing.assert_allclose(image, grey / 255.0, atol=1e-6)
        assert len(record.masks) == truth.max()
        # same objects (the reader numbers them in mask-file order)
        assert instances.match_instances(truth, labels, 0.99).f1 == 1.0
    assert cells.read_nuclei(folder / "stage1_train").root == dataset.root  # or the stage folder itself


def test_same_seed_same_bytes_other_seed_other_images(folder, tmp_path):
    again = synthetic_cells.write_nuclei(tmp_path / "a", images=6, image_size=96, seed=7)
    assert _digest(again) == _digest(folder)
    other = synthetic_cells.write_nuclei(tmp_path / "b", images=2, image_size=96, seed=8)
    assert not set(_digest(other).values()) & set(_digest(folder).values())


def test_generator_spans_a_few_to_a_few_hundred_nuclei_with_clumps():
    counts, touching = [], []
    for i in range(30):
        _, labels = synthetic_cells.render(42, i, 192)
        counts.append(labels.max())
        touching.append(instances.touching_fraction(labels))
    assert min(counts) <= 15 and max(counts) >= 200
    assert min(touching) < 0.5 < max(touching)


def test_ensure_writes_the_dataset_once_in_the_cache(tmp_path):
    cfg = config.load({"MEDXAI_PROFILE": "smoke", "MEDXAI_CACHE_DIR": str(tmp_path)})
    path = synthetic.ensure(cfg, "dsb2018")
    assert path == tmp_path / "synthetic" / "smoke" / "dsb2018" and (path / synthetic.MARKER).is_file()
    assert len(cells.read_nuclei(path).records) == synthetic_cells.SIZES["smoke"]["images"]
    stamp = (path / synthetic.MARKER).stat().st_mtime_ns
    assert synthetic.ensure(cfg, "dsb2018") == path and (path / synthetic.MARKER).stat().st_mtime_ns == stamp


def _one(tmp_path, masks, image=None, name="a" * 64):
    folder = tmp_path / name
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8) if image is None else image).save(folder / "images" / f"{name}.png")
    for i, mask in enumerate(masks):
        Image.fromarray(mask).save(folder / "masks" / f"m{i}.png")
    return cells.read_nuclei(tmp_path).records[0]


def _disc(y, x, size=16):
    yy, xx = np.mgrid[:size, :size]
    return np.where((yy - y) ** 2 + (xx - x) ** 2 < 9, 255, 0).astype(np.uint8)


def test_16_bit_and_grey_images_scale_to_unit_range(tmp_path):
    image = np.full((16, 16), 30000, np.uint16)
    record = _one(tmp_path, [_disc(5, 5)], image=image)
    loaded, labels = cells.load_nuclei(record)
    assert loaded.max() == pytest.approx(30000 / 65535) and labels.max() == 1


def test_a_16_bit_image_is_scaled_by_its_bit_depth_not_by_its_brightest_pixel(tmp_path):
    dim = np.full((16, 16), 200, np.uint16)
    one_bright = dim.copy()
    one_bright[0, 0] = 300  # 8-bit values but one: the old rule divided the first by 255 and the second by 65535
    with pytest.warns(UserWarning, match="below 4096"):  # both look like data using few of their 16 bits
        a, _ = cells.load_nuclei(_one(tmp_path / "a", [_disc(5, 5)], image=dim))
        b, _ = cells.load_nuclei(_one(tmp_path / "b", [_disc(5, 5)], image=one_bright))
    np.testing.assert_allclose(a[1:, 1:], 200 / 65535, rtol=1e-6)
    np.testing.assert_allclose(b[1:, 1:], a[1:, 1:])  # one pixel changes one pixel, not the image's brightness


def test_bad_layouts_and_masks_are_named(tmp_path):
    with pytest.raises(DataError, match="m1.png.*overlaps m0.png on"):
        cells.load_nuclei(_one(tmp_path / "o", [_disc(5, 5), _disc(6, 6)]))
    record = cells.read_nuclei(tmp_path / "o").records[0]
    _, labels = cells.load_nuclei(record, overlap="first")
    assert labels.max() == 2 and (labels == 1).sum() == (_disc(5, 5) > 0).sum()  # the first keeps the shared pixels
    with pytest.raises(DataError, match="m0.png: the mask is 8x16 .WxH. but its image .* is 16x16"):
        cells.load_nuclei(_one(tmp_path / "s", [np.zeros((16, 8), np.uint8) + 255]))
    with pytest.raises(DataError, match="m0.png: the mask is empty"):
        cells.load_nuclei(_one(tmp_path / "e", [np.zeros((16, 16), np.uint8)]))
    with pytest.raises(DataError, match="not binary: found values 0, 127"):
        cells.load_nuclei(_one(tmp_path / "g", [_disc(5, 5) // 2]))
    with pytest.raises(DataError, match="has no PNG mask"):
        _one(tmp_path / "n", [])
    (tmp_path / "x" / ("b" * 64) / "images").mkdir(parents=True)
    with pytest.raises(DataError, match=f"{'b' * 64}/images/{'b' * 64}.png is missing"):
        cells.read_nuclei(tmp_path / "x")
    with pytest.raises(DataError, match="folder not found"):
        cells.read_nuclei(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="overlap must be 'raise' or 'first'"):
        cells.load_nuclei(record, overlap="last")


def test_split_records_is_seeded_disjoint_and_complete(folder):
    records = cells.read_nuclei(folder).records
    a = cells.split_records(records, (0.5, 0.25, 0.25), seed=1)
    b = cells.split_records(records, (0.5, 0.25, 0.25), seed=1)
    assert a == b and [len(a[k]) for k in ("train", "val", "test")] == [2, 2, 2]
    ids = [r.id for part in a.values() for r in part]
    assert sorted(ids) == sorted(r.id for r in records)
    with pytest.raises(ValueError, match="add up to 1"):
        cells.split_records(records, (0.5, 0.5, 0.5))


def test_stratified_split_draws_val_and_test_alike():
    records = [cells.NucleiRecord(f"{i:064d}", None, ()) for i in range(90)]
    counts = np.random.default_rng(0).lognormal(3, 1, 90)
    parts = cells.split_records(records, (1 / 3, 1 / 3, 1 / 3), seed=3, strata=counts)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [30, 30, 30]
    by_id = {r.id: c for r, c in zip(records, counts)}
    medians = {k: np.median([by_id[r.id] for r in v]) for k, v in parts.items()}
    # sorted and dealt in blocks of three: each part's median within one block of the others
    ranks = {k: np.searchsorted(np.sort(counts), m) for k, m in medians.items()}
    assert max(ranks.values()) - min(ranks.values()) <= 4
    assert sorted(r.id for v in parts.values() for r in v) == sorted(r.id for r in records)
    with pytest.raises(ValueError, match="one finite number per record"):
        cells.split_records(records, strata=counts[:5])


def test_nuclei_unet_has_two_sigmoid_outputs_and_named_dropout():
    from helpers import models

    model = cells.nuclei_unet(base_filters=4, depth=2, dropout_rate=0.2)
    out = np.asarray(model(np.random.default_rng(0).random((2, 32, 32, 1)).astype("float32")))
    assert out.shape == (2, 32, 32, 2) and 0 <= out.min() and out.max() <= 1
    assert len(models.dropout_layer_names(model)) == 5  # two encoder levels, bottleneck, two decoder levels


@pytest.fixture(scope="module")
def nuclei_model():
    import keras

    keras.utils.set_random_seed(0)
    return cells.nuclei_unet(base_filters=4, depth=3, dropout_rate=0.2)


def test_tiled_prediction_equals_untiled_and_gives_the_same_counts(nuclei_model):
    from helpers import preprocessing

    grey, _ = synthetic_cells.render(3, 5, 192)
    image = (grey[:180, :168] / 255.0).astype(np.float32)  # not a multiple of the tile: edge tiles are partial
    padded, (h, w) = preprocessing.pad_to_multiple(image[..., None], 8)
    whole = nuclei_model.predict(padded[None], verbose=0)[0, :h, :w]
    tiled = preprocessing.predict_tiled(lambda window: nuclei_model.predict(window[None], verbose=0)[0], image,
                                        tile=64, margin=48)
    assert tiled.shape == whole.shape
    np.testing.assert_allclose(tiled, whole, atol=2e-5)
    assert instances.instances_from_maps(*np.moveaxis(tiled, -1, 0)).max() == instances.instances_from_maps(
        *np.moveaxis(whole, -1, 0)).max()
    with pytest.raises(ValueError, match="multiple of 8"):
        preprocessing.predict_tiled(lambda window: window, image, tile=60)


def test_tiled_mc_samples_match_untiled_sampling_in_distribution(nuclei_model):
    from helpers import uncertainty

    mc = uncertainty.with_mc_dropout(nuclei_model)
    grey, _ = synthetic_cells.render(3, 6, 128)
    image = (grey / 255.0).astype(np.float32)
    tiled = uncertainty.mc_predict_tiled(mc, image, samples=24, tile=64, margin=48, chunk=5)
    whole = uncertainty.mc_predict(mc, image[None, ..., None], samples=24)[:, 0]
    assert tiled.shape == whole.shape == (24, 128, 128, 2) and tiled.dtype == np.float16
    # per-pixel means of two independent sets of 24 draws: the gap within a few standard errors everywhere
    se = np.sqrt(tiled.astype(np.float32).var(0) / 24 + whole.var(0) / 24) + 1e-3
    z = np.abs(tiled.astype(np.float32).mean(0) - whole.mean(0)) / se
    assert np.quantile(z, 0.99) < 4 and tiled.astype(np.float32).std(0).mean() > 0.2 * whole.std(0).mean()


def test_three_kinds_are_recognised_and_brought_to_bright_nuclei(tmp_path):
    root = synthetic_cells.write_nuclei(tmp_path, images=3, image_size=64, seed=2,
                                        kinds=("fluorescence", "brightfield", "histology"))
    records = cells.read_nuclei(root).records
    kinds = {cells.kind_of(r) for r in records}
    assert kinds == set(cells.KINDS)
    for record in records:
        image, labels = cells.load_nuclei(record)
        raw = cells.load_image(record.image, bright_nuclei=False)
        inside, outside = image[labels > 0].mean(), image[labels == 0].mean()
        assert inside > outside + 0.05, (cells.kind_of(record), inside, outside)  # nuclei bright in every kind
        if cells.kind_of(record) != "fluorescence":
            assert raw[labels > 0].mean() < raw[labels == 0].mean()  # as stored: dark nuclei on a light field


def test_large_images_have_real_sizes_and_nuclei_counts(tmp_path):
    root = synthetic_cells.write_nuclei(tmp_path, images=2, image_size=64, seed=4, large=1, large_size=512)
    small, big = (cells.load_nuclei(r) for r in sorted(cells.read_nuclei(root).records,
                                                       key=lambda r: cells.load_image(r.image).size))
    assert small[0].shape == (64, 64) and big[0].shape == (512, 512)
    assert 2 <= big[1].max() <= 600  # magnified nuclei: a few to a few hundred, not tens of thousands


def test_acquisition_groups_and_the_split_that_keeps_them_together(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.random((64, 64)).astype(np.float32)
    images = [base, base.copy(), rng.random((64, 64)).astype(np.float32) * 0.5, rng.random((48, 48)).astype(np.float32)]
    groups = cells.acquisition_groups(images, ["fluorescence"] * 4)
    assert groups[0] == groups[1] and len(set(groups)) == 3
    assert cells.acquisition_groups(images,
                                    ["fluorescence", "brightfield", "fluorescence", "fluorescence"])[1] != groups[0]
    assert list(cells.acquisition_groups(images, None, known=["a", "b", "a", "c"])) == [0, 1, 0, 2]
    records = [f"r{i}" for i in range(30)]
    labels = np.repeat(np.arange(10), 3)
    parts = cells.split_groups(records, labels, fractions=(0.6, 0.2, 0.2), seed=1)
    side = {r: name for name, part in parts.items() for r in part}
    assert sorted(side) == sorted(records)
    assert all(len({side[f"r{i}"] for i in range(3 * g, 3 * g + 3)}) == 1 for g in range(10))  # a group on one side
    assert all(parts[name] for name in parts) and len(parts["train"]) >= 15
    with pytest.raises(ValueError, match="at least 3 groups"):
        cells.split_groups(records[:4], [0, 0, 1, 1])
    (tmp_path / "groups.csv").write_text("image_id,group\na,x\nb,x\n")
    assert cells.read_groups(tmp_path / "stage1_train") == {"a": "x", "b": "x"}
    (tmp_path / "groups.csv").write_text("id,experiment\na,x\n")
    with pytest.raises(DataError, match="image_id,group"):
        cells.read_groups(tmp_path)
