"""Your own model (oodscope.upstream.adapter): the post-hoc detectors read any torch classifier
through ModelAdapter; wrapping oodscope's own classifier gives its scores bit for bit; a plain-torch
residual network with torchvision-style module names on 64x64 RGB images is fitted, scored, saved
and loaded again (a different model refused); images of other sizes and channel counts are brought
to the declared input or refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from oodscope.data import load as load_data
from oodscope.detectors import create, load, registry
from oodscope.errors import InputError, ModelFileError
from oodscope.upstream.adapter import ModelAdapter, Preprocess, model_fingerprint
from oodscope.settings import settings_key
from oodscope.upstream.base import training_settings
from oodscope.upstream.classifier import Classifier, classifier_memory_format

USER_DETECTORS = [m for m, cls in registry().items()
                  if cls.requires.upstream is not None and cls.requires.upstream.takes_user_models]


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    train, test = load_data("digits", "train"), load_data("digits", "test")
    noise = np.random.default_rng(0).integers(0, 17, size=(40, *train.images.shape[1:])).astype(train.images.dtype)
    return {"x": train.images[:400], "y": train.labels[:400], "vx": train.images[400:520], "vy": train.labels[400:520],
            "test": test.images[:200], "outliers": noise}


def _fit(method: str, d: dict[str, np.ndarray], **kw) -> object:
    cls = registry()[method]
    extra = {"outliers": d["outliers"]} if cls.requires.outliers else {}
    quick = {"g_steps": 40} if "g_steps" in cls.defaults else {}  # g_theta's training: short, the test is its equality
    return create(method, epochs=1, progress=False, **quick).fit(d["x"], labels=d["y"], validation=d["vx"],
                                                        validation_labels=d["vy"], **extra, **kw)


def wrapped(clf: Classifier) -> ModelAdapter:
    """oodscope's own LeNet as a model of the user's: its modules named, its normalisation declared."""
    return ModelAdapter(clf.net, penultimate="hidden", head="fc", taps=["block1", "block2"],
                        preprocess=Preprocess(mean=tuple(clf.fitted["mean"]), std=tuple(clf.fitted["std"])),
                        channels_last=classifier_memory_format(clf.settings) == torch.channels_last,
                        batch_size=4 * int(clf.settings["batch_size"]))


def test_every_post_hoc_detector_reads_a_user_model() -> None:
    assert {"msp", "energy", "max-logit", "odin", "temperature", "mahalanobis", "mahalanobis-tuned", "gram", "ncd",
            "layers-clf"} <= set(USER_DETECTORS)


@pytest.fixture(scope="module")
def shared_classifier(digits) -> Classifier:
    """One built-in classifier for every detector whose settings train the same one (the others train their own)."""
    return _fit("msp", digits).upstream


def _same_training(method: str, clf: Classifier) -> bool:
    cls = registry()[method]
    want = cls.requires.upstream(**cls.requires.upstream.settings_from(create(method, epochs=1, progress=False).config))
    return cls.requires.upstream is Classifier and settings_key(training_settings(want.settings)) == \
        settings_key(training_settings(clf.settings))


def test_most_detectors_share_the_one_classifier(shared_classifier) -> None:
    shared = [m for m in USER_DETECTORS if _same_training(m, shared_classifier)]
    assert "msp" in shared and len(shared) >= len(USER_DETECTORS) // 2, shared


@pytest.mark.parametrize("method", USER_DETECTORS)
def test_wrapping_the_builtin_classifier_gives_its_scores_bit_for_bit(method: str, digits, shared_classifier) -> None:
    shared = _same_training(method, shared_classifier)
    builtin = _fit(method, digits, upstream=shared_classifier) if shared else _fit(method, digits)
    torch.manual_seed(123)  # what the detector draws (g_theta's initial weights, dropout) is seeded by fit
    mine = _fit(method, digits, upstream=wrapped(builtin.upstream))
    assert isinstance(mine.upstream, ModelAdapter)
    a, b = builtin.score(digits["test"]), mine.score(digits["test"])
    assert a.dtype == b.dtype and np.array_equal(a, b), f"{method}: max difference {np.abs(a - b).max()}"


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + self.skip(x))


class TinyResNet(nn.Module):
    """A residual network with torchvision's module names (conv1, layer1..layer4, avgpool, fc)."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1, self.layer2 = Block(8, 8, 1), Block(8, 16, 2)
        self.layer3, self.layer4 = Block(16, 16, 2), Block(16, 32, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def colour_squares(n: int, seed: int, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """64x64 RGB uint8 images: a bright square in one of four quadrants (the class) on noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    x = rng.integers(0, 60, (n, 3, 64, 64)).astype(np.uint8)
    for i, c in enumerate(labels):
        r, q = divmod(int(c), 2)
        x[i, int(c) % 3, 32 * r + 4:32 * r + 28, 32 * q + 4:32 * q + 28] = 230
    return x, labels


@pytest.fixture(scope="module")
def user_model() -> TinyResNet:
    """Trained in plain torch, as a user would, without oodscope."""
    torch.manual_seed(0)
    model = TinyResNet()
    x, y = colour_squares(256, 0)
    xt, yt = torch.as_tensor(x, dtype=torch.float32) / 255, torch.as_tensor(y)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(3):
        for i in range(0, 256, 32):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[i:i + 32]), yt[i:i + 32]).backward()
            opt.step()
    return model.eval()


def test_a_plain_torch_resnet_fitted_scored_saved_and_loaded(user_model: TinyResNet, tmp_path: Path) -> None:
    x, y = colour_squares(160, 1)
    inside, _ = colour_squares(60, 2)
    outside = np.random.default_rng(3).integers(0, 255, (60, 3, 64, 64)).astype(np.uint8)  # no square: noise
    adapter = ModelAdapter(user_model, penultimate="avgpool", head="fc", taps=["layer3", "layer4"])
    for method in ("msp", "energy", "mahalanobis"):
        det = create(method, progress=False).fit(x, labels=y, upstream=adapter)
        s_in, s_out = det.score(inside), det.score(outside)
        assert np.mean(s_out) > np.mean(s_in), method
        det.save(tmp_path / method)
        again = load(tmp_path / method, model=user_model)
        assert np.array_equal(again.score(inside), s_in), method
    mahalanobis = load(tmp_path / "mahalanobis", model=user_model)
    assert set(mahalanobis.fitted["layers"]) == {"layer3", "layer4", "avgpool"}
    with pytest.raises(ModelFileError, match="load it with the model"):
        load(tmp_path / "msp")
    other = TinyResNet()
    other.load_state_dict(user_model.state_dict())
    with torch.no_grad():
        other.fc.bias += 1e-3  # one bias nudged: another model
    with pytest.raises(ModelFileError, match="not the one the detector was fitted on"):
        load(tmp_path / "msp", model=other)
    assert model_fingerprint(user_model, adapter.spec) == adapter.fingerprint()
    assert not any(k.startswith("model.") for k in (tmp_path / "msp").joinpath("config.json").read_text().split('"'))
    weights = (tmp_path / "msp" / "weights.safetensors")
    assert not weights.exists() or weights.stat().st_size < 1000  # the user's weights are not copied


def test_images_of_other_sizes_and_channels_are_converted_as_declared_or_refused(user_model: TinyResNet) -> None:
    x, y = colour_squares(80, 4)
    grey = load_data("digits", "test").images[:20]  # 8x8 grey
    declared = ModelAdapter(user_model, penultimate="avgpool", head="fc", preprocess=Preprocess(size=(64, 64), channels=3))
    det = create("energy", progress=False).fit(x, labels=y, upstream=declared)
    assert det.upstream.normalize(torch.rand(2, 1, 8, 8)).shape == (2, 3, 64, 64)
    cropped = Preprocess(size=(64, 64), resize="center-crop")(torch.rand(2, 3, 48, 96))
    assert cropped.shape == (2, 3, 64, 64)
    plain = ModelAdapter(user_model, penultimate="avgpool", head="fc")
    assert plain.normalize(torch.full((1, 3, 5, 5), 0.25)).eq(0.25).all()  # nothing declared: the images as they are
    strict = ModelAdapter(user_model, head="fc", preprocess=Preprocess(size=(64, 64), resize="none", channels=3))
    with pytest.raises(InputError, match="resize is 'none'"):
        strict.logits(torch.rand(2, 3, 32, 32))
    with pytest.raises(InputError, match="4 channels; the model takes 3"):
        declared.logits(torch.rand(2, 4, 64, 64))
    with pytest.raises(InputError, match="cannot take images"):
        plain.logits(torch.rand(2, 1, 64, 64))  # one channel into a 3-channel conv, nothing declared
    assert det.score(grey).shape == (20,)  # grey 8x8 digits brought to 64x64 RGB, as declared
    with pytest.raises(InputError, match="no module 'layer9'"):
        ModelAdapter(user_model, penultimate="layer9")
    with pytest.raises(InputError, match="not a linear layer"):
        ModelAdapter(user_model, head="layer4")


def resnet_features(model: TinyResNet, x: np.ndarray) -> np.ndarray:
    """The penultimate features computed here by hand, layer by layer (not through the adapter)."""
    with torch.no_grad():
        t = torch.as_tensor(x, dtype=torch.float32) / 255
        t = torch.relu(model.bn1(model.conv1(t)))
        t = model.layer4(model.layer3(model.layer2(model.layer1(t))))
        return torch.flatten(model.avgpool(t), 1).double().numpy()


def test_label_free_detectors_on_a_users_backbone_match_their_formulas(user_model: TinyResNet, tmp_path: Path) -> None:
    from sklearn.covariance import ledoit_wolf_shrinkage

    x, _ = colour_squares(150, 5)  # no labels given: the features of a backbone trained elsewhere
    test = np.concatenate([colour_squares(30, 6)[0], np.random.default_rng(7).integers(0, 255, (30, 3, 64, 64)).astype(np.uint8)])
    adapter = ModelAdapter(user_model, penultimate="avgpool", batch_size=64)
    train_f, test_f = resnet_features(user_model, x), resnet_features(user_model, test)

    knn = create("deep-knn", k=3).fit(x, upstream=adapter)
    z = train_f / np.linalg.norm(train_f, axis=1, keepdims=True)
    q = test_f / np.linalg.norm(test_f, axis=1, keepdims=True)
    expected = np.sort(np.linalg.norm(q[:, None, :] - z[None, :, :], axis=2), axis=1)[:, 2]
    np.testing.assert_allclose(knn.score(test), expected, rtol=1e-5, atol=1e-6)

    gauss = create("gaussian").fit(x, upstream=adapter)
    mu, cov = train_f.mean(0), np.cov(train_f, rowvar=False)
    a = ledoit_wolf_shrinkage(train_f)
    shrunk = (1 - a) * cov + a * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    diff = test_f - mu
    expected = np.sqrt(np.einsum("ij,jk,ik->i", diff, np.linalg.pinv(shrunk), diff))
    np.testing.assert_allclose(gauss.score(test), expected, rtol=1e-4)
    assert gauss.fitted["shrinkage"] == pytest.approx(a, rel=1e-6)
    assert np.mean(gauss.score(test[30:])) > np.mean(gauss.score(test[:30]))  # noise is far from the squares

    small = create("deep-knn", bank=40, seed=1).fit(x, upstream=adapter)  # memory bounded by the bank
    assert small.fitted["bank_size"] == 40 and small.fitted["seen"] == 150
    kept = small.bank.double().numpy()
    assert all(np.isclose(np.abs(z - row).sum(1), 0, atol=1e-6).any() for row in kept)  # a sample of the features
    assert not np.array_equal(kept, create("deep-knn", bank=40, seed=2).fit(x, upstream=adapter).bank.numpy())
    for det in (knn, gauss):
        det.save(tmp_path / det.method)
        assert np.array_equal(load(tmp_path / det.method, model=user_model).score(test), det.score(test))


def test_pyod_peers_read_a_users_backbone(user_model: TinyResNet, tmp_path: Path) -> None:
    pyod = pytest.importorskip("pyod.models.knn")
    x, _ = colour_squares(120, 8)
    test = np.concatenate([colour_squares(20, 9)[0], np.random.default_rng(3).integers(0, 255, (20, 3, 64, 64)).astype(np.uint8)])
    adapter = ModelAdapter(user_model, penultimate="avgpool", batch_size=64)
    det = create("knn").fit(x, upstream=adapter)
    reference = pyod.KNN(n_neighbors=5, method="largest").fit(resnet_features(user_model, x))
    np.testing.assert_allclose(det.score(test), reference.decision_function(resnet_features(user_model, test)), rtol=1e-5)
    streamed = create("knn").fit(torch.utils.data.DataLoader(torch.as_tensor(x), batch_size=50), upstream=adapter)
    np.testing.assert_allclose(streamed.score(test), det.score(test), rtol=1e-6)
    det.save(tmp_path / "peer")
    assert np.array_equal(load(tmp_path / "peer", model=user_model).score(test), det.score(test))
    with pytest.raises(ModelFileError, match="not the one the detector was fitted on"):
        load(tmp_path / "peer", model=TinyResNet())
    with pytest.raises(InputError, match="images to score"):
        det.score(test[:, :1])


def write_pngs(folder: Path, images: np.ndarray, labels: np.ndarray | None = None) -> None:
    from PIL import Image

    for i, img in enumerate(images):
        where = folder if labels is None else folder / f"class{int(labels[i])}"
        where.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.moveaxis(img, 0, -1)).save(where / f"{i:04d}.png")


def test_the_command_line_fits_scores_and_thresholds_with_a_pt2_model(user_model: TinyResNet, tmp_path: Path) -> None:
    import csv

    from click.testing import CliRunner

    from oodscope.cli import cli

    program = tmp_path / "my_model.pt2"
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.export.save(torch.export.export(user_model, (torch.rand(2, 3, 64, 64),), dynamic_shapes=({0: batch},)), program)
    x, y = colour_squares(60, 8)
    write_pngs(tmp_path / "train", x, y)
    inside, _ = colour_squares(10, 9)
    outside = np.random.default_rng(10).integers(0, 255, (10, 3, 64, 64)).astype(np.uint8)
    write_pngs(tmp_path / "new" / "in", inside)
    write_pngs(tmp_path / "new" / "out", outside)
    runner = CliRunner()
    for method in ("energy", "deep-knn"):
        memory = ["--channels-last"] if method == "deep-knn" else []  # the flag reaches the adapter and its saved spec
        r = runner.invoke(cli, ["fit", "--method", method, "--train", str(tmp_path / "train"), "--model", str(program),
                                "--penultimate", "avgpool", "--head", "fc", *memory, "--out", str(tmp_path / method)])
        assert r.exit_code == 0, r.output
        assert (tmp_path / method / "model.pt2").read_bytes() == program.read_bytes()  # carried, checksummed
        r = runner.invoke(cli, ["score", str(tmp_path / method), str(tmp_path / "new"), "--out", str(tmp_path / f"{method}.csv")])
        assert r.exit_code == 0, r.output
        rows = list(csv.DictReader((tmp_path / f"{method}.csv").open()))
        score = {row["file"]: float(row["score"]) for row in rows}
        assert len(score) == 20
        ins = [s for f, s in score.items() if "/in/" in f]
        outs = [s for f, s in score.items() if "/out/" in f]
        assert np.mean(outs) > np.mean(ins), method
        det = load(tmp_path / method)  # the saved program stands in for the model
        assert det.upstream.fingerprint() == ModelAdapter(user_model, "avgpool", "fc", channels_last=bool(memory)).fingerprint()
        assert det.upstream.spec.channels_last is bool(memory)
        if memory:  # the same features as the default memory format, to float rounding
            from oodscope.data import load_folder
            from oodscope.pipeline import fit_with_threshold

            plain = fit_with_threshold("deep-knn", load_folder(tmp_path / "train"),
                                       upstream=ModelAdapter(user_model, "avgpool", "fc")).detector  # the CLI's split
            np.testing.assert_allclose(det.score(inside), plain.score(inside), rtol=1e-4, atol=1e-5)
        assert runner.invoke(cli, ["threshold", str(tmp_path / method), "--accept", "0.9"]).exit_code == 0
    from oodscope.export.loading import identity
    from oodscope.serve.worker import WorkerScorer

    det = load(tmp_path / "energy")
    worker = WorkerScorer(tmp_path / "energy", threads=1, expected_identity=identity(tmp_path / "energy", det))
    try:  # what `oodscope serve` runs: a worker process loading the detector and its model program
        assert np.array_equal(worker(inside), det.score(inside))
    finally:
        worker.close()
    with open(tmp_path / "energy" / "model.pt2", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ModelFileError, match="model.pt2: missing, or its checksum"):
        load(tmp_path / "energy")
    r = runner.invoke(cli, ["fit", "--method", "msp", "--train", str(tmp_path / "train"), "--penultimate", "avgpool",
                            "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "give it with --model" in r.output
    r = runner.invoke(cli, ["fit", "--method", "msp", "--train", str(tmp_path / "train"), "--model", str(tmp_path / "m.pt"),
                            "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "torch.export program (.pt2)" in r.output


def test_the_command_line_streams_the_training_folder_through_a_users_model(user_model: TinyResNet, tmp_path: Path) -> None:
    """``oodscope fit --model`` reads --train batch by batch for a detector that fits on a stream
    (mahalanobis' running statistics here): the same detector as the in-memory fit of the same 90 %."""
    from click.testing import CliRunner

    from oodscope.cli import cli
    from oodscope.data import load_folder
    from oodscope.pipeline import fit_with_threshold

    program = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(user_model, (torch.rand(2, 3, 64, 64),),
                                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},)), program)
    x, y = colour_squares(50, 21)
    write_pngs(tmp_path / "train", x, y)
    test, _ = colour_squares(12, 22)
    r = CliRunner().invoke(cli, ["fit", "--method", "mahalanobis", "--train", str(tmp_path / "train"), "--model", str(program),
                                 "--penultimate", "avgpool", "--head", "fc", "--taps", "layer3", "--out", str(tmp_path / "det")])
    assert r.exit_code == 0, r.output
    assert "fitted mahalanobis on 45 images" in r.output
    streamed = load(tmp_path / "det")
    in_memory = fit_with_threshold("mahalanobis", load_folder(tmp_path / "train"),
                                   upstream=ModelAdapter(user_model, "avgpool", "fc", taps=["layer3"])).detector
    np.testing.assert_allclose(streamed.score(test), in_memory.score(test), rtol=1e-6, atol=1e-9)
    assert streamed.threshold == pytest.approx(in_memory.threshold, rel=1e-6)


def test_a_pt2_that_would_unpickle_is_refused(user_model: TinyResNet, tmp_path: Path) -> None:
    import json as jsonlib
    import zipfile

    from oodscope.upstream.adapter import load_program

    good = tmp_path / "good.pt2"
    torch.export.save(torch.export.export(user_model, (torch.rand(2, 3, 64, 64),)), good)
    assert load_program(good) is not None
    with zipfile.ZipFile(good) as z:
        items = {n: z.read(n) for n in z.namelist()}
    config = next(n for n in items if n.endswith("_weights_config.json"))
    data = jsonlib.loads(items[config])
    data["config"][next(iter(data["config"]))]["use_pickle"] = True  # as an archive with pickled weights says
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(bad, "w") as z:
        for n, b in items.items():
            z.writestr(n, jsonlib.dumps(data) if n == config else b)
    with pytest.raises(InputError, match="stored with pickle"):
        load_program(bad)
    (tmp_path / "junk.pt2").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a torch.export program"):
        load_program(tmp_path / "junk.pt2")


def test_label_free_detectors_fit_on_a_stream_of_batches(user_model: TinyResNet, tmp_path: Path) -> None:
    from oodscope.data import ImageStream

    x, _ = colour_squares(90, 11)
    test, _ = colour_squares(20, 12)
    write_pngs(tmp_path / "folder", x)
    adapter = ModelAdapter(user_model, penultimate="avgpool", batch_size=32)
    loader = torch.utils.data.DataLoader(torch.as_tensor(x), batch_size=25)  # uint8 batches, as a Dataset gives them
    for method in ("deep-knn", "gaussian"):
        in_memory = create(method).fit(x, upstream=adapter).score(test)
        for stream in (ImageStream.from_folder(tmp_path / "folder", batch_size=16), loader):
            det = create(method).fit(stream, upstream=adapter)
            assert det.fitted["seen"] == 90
            np.testing.assert_allclose(det.score(test), in_memory, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="reads a model of yours"):
        create("deep-knn").fit(loader)  # GEOM's f would need the images in memory
    with pytest.raises(InputError, match="fits on images in memory"):
        create("layers-clf").fit(loader, x[:8], upstream=adapter)


def test_label_reading_detectors_fit_on_a_stream_of_labelled_batches(user_model: TinyResNet, tmp_path: Path) -> None:
    """Class folders and DataLoaders of (images, labels): mahalanobis' running class means and tied
    covariance over every image, react's and gram's samples (here: all images), msp's nothing."""
    from oodscope.data import ImageStream

    x, y = colour_squares(90, 13)
    test, _ = colour_squares(20, 14)
    write_pngs(tmp_path / "classes", x, y)
    adapter = ModelAdapter(user_model, penultimate="avgpool", head="fc", taps=["layer3"], batch_size=32)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.as_tensor(x), torch.as_tensor(y)),
                                         batch_size=25)
    folder = ImageStream.from_folder(tmp_path / "classes", batch_size=16)
    settings = {"mahalanobis": {}, "react": {"fit_samples": 1000}, "gram": {"fit_samples": 60, "val_samples": 30},
                "msp": {}}
    for method, kw in settings.items():
        in_memory = create(method, **kw).fit(x, labels=y, upstream=adapter).score(test)
        for stream in (folder, loader):
            got = create(method, **kw).fit(stream, upstream=adapter).score(test)
            if method == "gram":  # its sample is drawn from another order: the same images, other fit / held-out roles
                assert np.isfinite(got).all() and got.shape == in_memory.shape
            else:
                np.testing.assert_allclose(got, in_memory, rtol=1e-6, atol=1e-9)
    unlabelled = torch.utils.data.DataLoader(torch.as_tensor(x), batch_size=25)
    with pytest.raises(InputError, match="class labels"):
        create("mahalanobis").fit(unlabelled, upstream=adapter)
    every = create("react", fit_samples=0).fit(loader, upstream=adapter)  # every image's features, a batch at a time
    np.testing.assert_allclose(every.score(test), create("react", fit_samples=0).fit(x, labels=y, upstream=adapter).score(test),
                               rtol=1e-6, atol=1e-9)
    with pytest.raises(InputError, match="class labels"):
        create("knn-clf").fit(unlabelled, upstream=adapter)


def test_the_classifier_suite_reads_a_users_model(tmp_path: Path, data_root: Path) -> None:
    """`oodscope bench --suite classifier --model`: the detectors that read a classifier read the
    user's (its fingerprint in every row), those that train their own are left out with a message."""
    import json as jsonlib

    from click.testing import CliRunner

    from oodscope.cli import cli

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 5, stride=4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 16), nn.ReLU(),
                        nn.Linear(16, 6)).eval()
    program = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (torch.rand(2, 1, 28, 28),),
                                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},)), program)
    out = tmp_path / "suite"
    r = CliRunner().invoke(cli, ["bench", "--suite", "classifier", "--protocol", "split-mnist", "--methods",
                                 "msp,react,dgc", "--seeds", "0", "--preset", "smoke", "--model", str(program),
                                 "--penultimate", "4", "--head", "5", "--data-root", str(data_root), "--no-download",
                                 "--no-progress", "--threads", "1", "--no-disk-cache", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "left out (they train their own network, not --model): dgc" in r.output
    rows = [jsonlib.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    fingerprint = ModelAdapter(net, penultimate="4", head="5").fingerprint()
    assert sorted(row["method"] for row in rows) == ["msp", "react"]
    assert all(row["upstream"]["kind"] == "model" and fingerprint.startswith(row["upstream"]["key"]) for row in rows)
    assert jsonlib.loads((out / "experiment.json").read_text())["grid"]["config"]["model"]["adapter"]["head"] == "5"
    r = CliRunner().invoke(cli, ["bench", "--suite", "table3", "--model", str(program), "--out", str(tmp_path / "t3")])
    assert r.exit_code == 2 and "--model" in r.output
