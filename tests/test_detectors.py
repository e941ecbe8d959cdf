import json

import numpy as np
import pytest
import torch

import oodscope.model_files as files_mod
from oodscope.data import load as load_data
from oodscope.detectors import GeomDetector, LayersDetector, create, load, settings_for
from oodscope.errors import InputError, ModelFileError
from oodscope.metrics import auroc

FIXTURES = __import__("pathlib").Path(__file__).resolve().parent / "fixtures" / "v1"

TINY = {"widths": [8, 16, 16], "epochs": 25, "batch_size": 64, "progress": False}
TINY_LAYERS = {**TINY, "g_steps": 60, "g_batch": 64, "head_hidden": 32, "head_width": 16}


@pytest.fixture(scope="module")
def digits():
    train, test = load_data("digits", "train"), load_data("digits", "test")
    return train, test


@pytest.fixture(scope="module")
def fitted(digits):
    train, test = digits
    x = train.images[train.labels == 0]
    oe = train.images[train.labels == 1][:16]
    geom = GeomDetector(**TINY).fit(x)
    layers = LayersDetector(**TINY_LAYERS).fit(x, oe, upstream=geom)
    return geom, layers


def test_geom_and_layers_separate_digit_zero(digits, fitted):
    _, test = digits
    keep = test.labels != 1  # outlier class is never in the test set
    xs, is_ood = test.images[keep], test.labels[keep] != 0
    for det in fitted:
        s = det.score(xs)
        assert s.shape == (len(xs),) and np.isfinite(s).all()
        assert auroc(s, is_ood) > 0.85, det.method


def test_geom_score_is_negated_sum_of_correct_softmax(fitted, digits):
    geom, _ = fitted
    x = digits[1].images[:5]
    s = geom.score(x)
    assert np.all(s <= 0) and np.all(s >= -len(geom.transforms))


def test_save_load_roundtrip_gives_identical_scores(tmp_path, fitted, digits):
    x = digits[1].images[:40]
    for det in fitted:
        det.set_threshold(0.5)
        p = det.save(tmp_path / det.method)
        assert sorted(f.name for f in p.iterdir()) == ["config.json", "weights.safetensors"]
        back = load(p)
        assert type(back) is type(det) and back.threshold == 0.5
        np.testing.assert_allclose(back.score(x), det.score(x), rtol=1e-5, atol=1e-5)
    assert [f.name for f in tmp_path.iterdir() if f.name.startswith(".")] == []


def test_edited_config_and_broken_files_are_refused(tmp_path, fitted):
    p = fitted[0].save(tmp_path / "m")
    cfg = json.loads((p / "config.json").read_text())
    cfg["config"]["widths"] = [4, 4, 4]
    (p / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="do not match"):
        load(p)
    (p / "config.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="unreadable"):
        load(p)
    with pytest.raises(ModelFileError, match="not a saved oodscope model"):
        load(tmp_path / "missing")
    cfg["config"]["widths"] = TINY["widths"]
    cfg["method"] = "pickle"
    (p / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="unknown method"):
        load(p)


def test_failed_save_leaves_nothing_behind(tmp_path, fitted, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(files_mod, "save_file", boom)
    with pytest.raises(OSError):
        fitted[0].save(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_model(tmp_path, fitted, monkeypatch):
    p = fitted[0].save(tmp_path / "m")
    before = (p / "config.json").read_text()
    monkeypatch.setattr(files_mod, "save_file", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        fitted[0].save(p)
    assert (p / "config.json").read_text() == before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m"]


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((0, 1, 8, 8), np.uint8), "empty"),
        (np.zeros((2, 3, 8, 8), np.uint8), "1-channel"),
        (np.zeros((2, 1, 9, 9), np.uint8), "8x8"),
        (np.zeros((2, 1, 1, 8, 8), np.uint8), "shape"),
        (np.full((2, 1, 8, 8), np.nan, np.float32), "NaN"),
        (np.array([["a"]]), "dtype"),
        (np.zeros((2, 1, 8, 8), bool), "dtype"),
        (np.full((2, 1, 8, 8), 300, np.int64), "0..255"),
        (np.full((2, 1, 8, 8), 200.0, np.float32), r"\[0, 1\].*divide float images by 255"),
        (np.full((2, 1, 8, 8), -0.5, np.float64), r"\[0, 1\]"),
    ],
)
def test_bad_inputs_to_score_name_the_problem(fitted, bad, match):
    with pytest.raises(InputError, match=match):
        fitted[0].score(bad)


def test_misuse_is_reported(digits):
    x = digits[0].images[:20]
    with pytest.raises(InputError, match="not fitted"):
        GeomDetector(**TINY).score(x)
    with pytest.raises(InputError, match="outlier"):
        LayersDetector(**{**TINY_LAYERS, "epochs": 1}).fit(x)
    with pytest.raises(InputError, match="unknown settings"):
        create("geom", nonsense=1)
    with pytest.raises(InputError, match="taps"):
        LayersDetector(taps=["z9"])
    with pytest.raises(InputError, match="unknown method"):
        create("nope")
    with pytest.raises(InputError, match="channels"):
        LayersDetector(**{**TINY_LAYERS, "epochs": 1}).fit(x, np.zeros((4, 3, 8, 8), np.uint8))


def test_layers_taps_are_configurable_for_the_table2_ablations(digits, fitted):
    geom, _ = fitted
    x = digits[0].images[digits[0].labels == 0]
    oe = digits[0].images[digits[0].labels == 1][:16]
    for taps in (["softmax"], ["z4"], ["z1", "z2", "z3", "z4"]):
        det = LayersDetector(**{**TINY_LAYERS, "g_steps": 3}, taps=taps).fit(x, oe, upstream=geom)
        assert det.head.vector == [t for t in taps if t in ("softmax", "z4")]
        assert det.score(x[:3]).shape == (3,)


def test_layers_mixup_and_augmentation_options_change_training(digits, fitted):
    geom, _ = fitted
    x = digits[0].images[digits[0].labels == 0]
    oe = digits[0].images[digits[0].labels == 1][:16]
    probe = digits[1].images[:20]
    cfg = {**TINY_LAYERS, "g_steps": 10}
    plain = LayersDetector(**cfg).fit(x, oe, upstream=geom).score(probe)
    for extra in ({"g_mixup": 0.5}, {"g_augment": "both"}, {"g_augment": "none"}):
        s = LayersDetector(**cfg, **extra).fit(x, oe, upstream=geom).score(probe)
        assert np.isfinite(s).all() and not np.allclose(s, plain), extra


def test_mnist_end_to_end_geom_and_layers(data_root):
    """Real MNIST one-class (ID digit 1) with 16 EMNIST-letter outliers, small budget."""
    from oodscope.protocols import one_class, sample_outliers

    split = one_class("mnist", 1, root=data_root)
    aux = load_data("emnist-letters", "test", root=data_root, download=False)
    oe = sample_outliers(aux, 16, seed=0, like=split.train)
    rng = np.random.default_rng(0)
    train = split.train.images[rng.choice(len(split.train), 1500, replace=False)]
    idx = rng.choice(len(split.test), 1500, replace=False)
    xs, is_ood = split.test.images[idx], split.is_ood[idx]
    cfg = {"widths": [8, 16, 32], "epochs": 2, "progress": False}
    geom = GeomDetector(**cfg).fit(train)
    layers = LayersDetector(**cfg, g_steps=80).fit(train, oe.images, upstream=geom)
    assert auroc(geom.score(xs), is_ood) > 0.8
    assert auroc(layers.score(xs), is_ood) > 0.9


@pytest.mark.parametrize("method", ["geom+", "bce"])
def test_semi_supervised_baselines_fit_score_and_roundtrip(method, digits, tmp_path):
    train, test = digits
    x = train.images[train.labels == 0]
    oe = train.images[train.labels == 1][:16]
    settings = {k: v for k, v in TINY_LAYERS.items() if k in create(method).defaults}
    det = create(method, **settings).fit(x, oe)
    keep = test.labels != 1
    xs = test.images[keep]
    s = det.score(xs)
    assert auroc(s, test.labels[keep] != 0) > 0.8
    with pytest.raises(InputError, match="outlier"):
        create(method, **settings).fit(x)
    back = load(det.save(tmp_path / "m"))
    np.testing.assert_allclose(back.score(xs[:10]), s[:10], rtol=1e-5, atol=1e-5)


def test_paper_preset_builds_the_papers_network_and_runs(tmp_path):
    """--preset paper: WRN-16-4 (dropout 0.3), the 72 GEOM transformations and g_theta on z1..z4."""
    settings = settings_for("layers", "paper", device="cpu", overrides={"epochs": 1, "g_steps": 1, "g_batch": 8, "progress": False})
    assert settings["backbone"] == "wrn" and (settings["depth"], settings["width"], settings["dropout"]) == (16, 4, 0.3)
    assert settings["transforms"] == "geom72" and settings["taps"] == ["z1", "z2", "z3", "z4"]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
    det = LayersDetector(**settings).fit(x, rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8))
    assert len(det.base.transforms) == 72 and det.base.net.widths == (64, 128, 256)
    assert det.score(x[:2]).shape == (2,)


def test_layers_adds_fs_geom_score_and_a_knn_distance_standardised_on_held_out_images(digits, fitted):
    """The default score is f_weight * z_f + z_g + knn_weight * z_knn, each standardised on the 10 %
    of the in-distribution images g never saw: on those images each part has mean 0 and std 1;
    z_f is GEOM's score, z_knn the distance to the k-th nearest bank image in f's ``knn_tap`` (a map
    averaged over knn_pool x knn_pool cells) of all transformations, each unit-normalised,
    concatenated and normalised again."""
    geom, layers = fitted
    x = torch.as_tensor(digits[0].images[digits[0].labels == 0])
    n_held = round(0.1 * len(x))
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    held = x[perm[:n_held]]
    st = layers.fitted["standardise"]
    assert (layers.config["f_weight"], layers.config["knn_weight"], len(st["mean"])) == (0.5, 1.0, 3)
    assert layers.fitted["knn_bank"] == len(x) - n_held  # fewer than knn_bank: every image g trained on
    z = (layers._sums(held.float() / 255) - np.asarray(st["mean"])) / np.asarray(st["std"])
    np.testing.assert_allclose(layers.score(held), 0.5 * z[:, 0] + z[:, 1] + z[:, 2], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(z[:, 0], (geom.score(held) - st["mean"][0]) / st["std"][0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-3)

    f = layers.base
    with torch.no_grad():
        xn = f.normalize(held.float() / 255)
        tap, pool = layers.config["knn_tap"], layers.config["knn_pool"]
        maps = [f.taps(f.transforms.one(xn, k))[tap].float() for k in range(len(f.transforms))]
        feats = [torch.nn.functional.normalize(m if m.dim() == 2 else torch.nn.functional.adaptive_avg_pool2d(m, pool).flatten(1), dim=1)
                 for m in maps]
    q = torch.nn.functional.normalize(torch.cat(feats, dim=1), dim=1)
    bank = torch.nn.functional.normalize(layers.bank.features.permute(1, 0, 2).flatten(1), dim=1)
    kth = torch.cdist(q, bank).topk(layers.config["knn_k"], dim=1, largest=False).values[:, -1].numpy()
    np.testing.assert_allclose(z[:, 2], (kth - st["mean"][2]) / st["std"][2], rtol=1e-3, atol=1e-3)


def test_layers_spread_of_identical_held_out_images_is_floored(digits, fitted):
    """Held-out images that are all the same give each part a spread of 0 (or of rounding size);
    standardising by it would blow rounding up into the score, so it is floored at 1e-3 of the part's
    scale and scores of other images stay of ordinary size."""
    geom, _ = fitted
    x = digits[0].images[digits[0].labels == 0].copy()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(3)).numpy()
    held = perm[:round(0.1 * len(x))]
    x[held] = x[held[0]]
    det = LayersDetector(**{**TINY_LAYERS, "g_steps": 3}).fit(x, digits[0].images[digits[0].labels == 1][:16], upstream=geom)
    mean, std = (np.asarray(det.fitted["standardise"][k]) for k in ("mean", "std"))
    assert np.all(std >= 1e-3 * np.abs(mean) * 0.999) and np.all(std > 0)
    s = det.score(digits[1].images[:20])
    assert np.isfinite(s).all() and np.abs(s).max() < 1e6


def test_layers_paper_score_is_g_alone_and_small_sets_are_refused(digits, fitted):
    geom, _ = fitted
    x = digits[0].images[digits[0].labels == 0]
    oe = digits[0].images[digits[0].labels == 1][:16]
    paper = LayersDetector(**{**TINY_LAYERS, "g_steps": 3, "f_weight": 0.0, "knn_weight": 0.0}).fit(x, oe, upstream=geom)
    s = paper.score(x[:10])
    assert "standardise" not in paper.fitted and np.all((s >= 0) & (s <= len(geom.transforms)))
    assert settings_for("layers", "paper")["f_weight"] == 0.0 and settings_for("layers", "paper")["knn_weight"] == 0.0
    g_only = LayersDetector(**{**TINY_LAYERS, "g_steps": 3, "f_weight": 0.0, "knn_weight": 0.0}).fit(x, oe, upstream=geom)
    no_knn = LayersDetector(**{**TINY_LAYERS, "g_steps": 3, "knn_weight": 0.0}).fit(x, oe, upstream=geom)
    assert no_knn.bank is None and len(no_knn.fitted["standardise"]["mean"]) == 2 and "knn_bank" not in no_knn.fitted
    assert g_only.bank is None
    with pytest.raises(InputError, match="knn_k=50"):
        LayersDetector(**{**TINY_LAYERS, "g_steps": 3, "knn_k": 50}).fit(x[:30], oe, upstream=geom)
    with pytest.raises(InputError, match="too few to hold out"):
        LayersDetector(**{**TINY_LAYERS, "g_steps": 3}).fit(x[:3], oe, upstream=geom)
    few = LayersDetector(**{**TINY_LAYERS, "g_steps": 3}).fit(x[:13], oe, upstream=geom)  # 2 held out, not 1
    assert np.isfinite(few.score(x[:5])).all()
    with pytest.raises(InputError, match="f_weight"):
        LayersDetector(f_weight=-1.0)
    with pytest.raises(InputError, match="knn_weight"):
        LayersDetector(knn_weight=-1.0)
    with pytest.raises(InputError, match="knn_k"):
        LayersDetector(knn_k=10, knn_bank=5)


def test_fit_is_reproducible_whatever_ran_before(digits):
    x = digits[0].images[digits[0].labels == 3][:40]
    a = GeomDetector(**{**TINY, "epochs": 1}).fit(x).score(x[:5])
    torch.manual_seed(12345)  # disturb the global generator
    torch.rand(100)
    b = GeomDetector(**{**TINY, "epochs": 1}).fit(x).score(x[:5])
    np.testing.assert_array_equal(a, b)


def test_layers_with_shared_f_equals_layers_trained_alone(digits):
    x = digits[0].images[digits[0].labels == 4]
    oe = digits[0].images[digits[0].labels == 5][:8]
    cfg = {**TINY_LAYERS, "epochs": 2, "g_steps": 5}
    geom = GeomDetector(**{k: v for k, v in cfg.items() if k in GeomDetector.defaults}).fit(x)
    shared = LayersDetector(**cfg).fit(x, oe, upstream=geom)
    alone = LayersDetector(**cfg).fit(x, oe)
    np.testing.assert_allclose(shared.score(x[:6]), alone.score(x[:6]), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="different settings"):
        LayersDetector(**{**cfg, "epochs": 3}).fit(x, oe, upstream=geom)
    with pytest.raises(InputError, match="another shape"):
        LayersDetector(**cfg).fit(np.zeros((4, 1, 12, 12), np.uint8), oe[:, :, :4, :4].repeat(3, 2).repeat(3, 3), upstream=geom)


def test_a_gpu_trained_model_loads_on_the_cpu(tmp_path, fitted):
    p = fitted[0].save(tmp_path / "m")
    cfg = json.loads((p / "config.json").read_text())
    cfg["config"]["device"] = "cuda"
    (p / "config.json").write_text(json.dumps(cfg))  # the checksum covers the weights, not the JSON
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    det = load(p)
    assert det.config["device"] == "cpu" and det.score(np.zeros((1, 1, 8, 8), np.uint8)).shape == (1,)


def test_a_layers_model_saved_before_knn_tap_loads_with_the_z4_distance(tmp_path, digits, fitted):
    """Models saved while the kNN part always read z4 have no knn_tap in their config: they load
    with knn_tap z4 and score as they did."""
    geom, _ = fitted
    x = digits[0].images[digits[0].labels == 0]
    det = LayersDetector(**{**TINY_LAYERS, "g_steps": 3, "knn_tap": "z4"}).fit(x, digits[0].images[digits[0].labels == 1][:16], upstream=geom)
    p = det.save(tmp_path / "m")
    cfg = json.loads((p / "config.json").read_text())
    del cfg["config"]["knn_tap"], cfg["config"]["knn_pool"]
    (p / "config.json").write_text(json.dumps(cfg))
    old = load(p)
    assert old.config["knn_tap"] == "z4" and old.bank.features.shape == det.bank.features.shape
    np.testing.assert_allclose(old.score(digits[1].images[:20]), det.score(digits[1].images[:20]), rtol=1e-6, atol=1e-6)
    assert LayersDetector.defaults["knn_tap"] == "z2"


@pytest.mark.parametrize("method", ["geom", "layers"])
def test_models_saved_before_the_framework_change_load_with_identical_scores(method, digits):
    """Model directories written by the earlier detector interface (tests/fixtures/v1) still load,
    and score the digits test images exactly as they did when they were written."""
    det = load(FIXTURES / f"model-{method}")
    expected = np.load(FIXTURES / f"model-{method}.expected.npy")
    np.testing.assert_array_equal(det.score(digits[1].images[:50]), expected)
    assert det.threshold == 0.5 and det.method == method
    if method == "layers":  # settings added since keep the values the model was fitted with
        assert det.config["f_weight"] == 0.0 and det.config["g_generic"] == 0 and det.config["knn_weight"] == 0.0


def test_float_images_in_unit_range_score_like_uint8(fitted, digits):
    x = digits[1].images[:10]
    np.testing.assert_allclose(fitted[0].score(x.astype(np.float32) / 255), fitted[0].score(x), rtol=1e-5, atol=1e-6)


def test_narrow_networks_train_with_two_threads_on_odd_batches():
    """torch 2.13's CPU backward of the small residual CNN with 8-channel layers in channels_last
    with 2 threads crashed the process on a batch of odd size (the smoke preset, --threads 2);
    narrow GEOM networks and classifiers with several threads now stay contiguous."""
    import subprocess
    import sys

    from oodscope.training.core import memory_format

    assert memory_format([8, 8, 8], threads=2) == torch.contiguous_format
    assert memory_format([8, 8, 8], threads=1) == torch.channels_last  # one thread: results as before
    assert memory_format([16, 32, 64], threads=2) == memory_format(None, threads=2) == torch.channels_last
    code = ("import torch; torch.set_num_threads(2); from oodscope.upstream.geom_net import GeomNet; "
            "from oodscope.upstream.classifier import Classifier; x = torch.rand(161, 1, 28, 28); "
            "GeomNet(widths=[8, 8, 8], epochs=2, transforms='rot4', progress=False).fit(x); print('geom trained'); "
            "Classifier(arch='small', widths=[8, 8, 8], epochs=2, progress=False).fit(x, torch.arange(161) % 3); "
            "print('classifier trained')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "classifier trained" in r.stdout, (r.returncode, r.stdout, r.stderr[-2000:])
