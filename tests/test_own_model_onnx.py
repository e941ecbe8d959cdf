"""Your own model as an ONNX file (oodscope.upstream.onnx_model): the plain-torch TinyResNet of
test_own_model, exported here with torch.onnx.export, is read through onnxruntime by the module
names a user would give for torch (avgpool, layer3, layer4, fc); its taps, head and the scores of
the post-hoc detectors equal those of the torch module (rtol 1e-5), through the API and the
command line; a saved detector carries the file, reloads it and refuses another; what needs
gradients is refused naming the detector; bad module names and bad files are refused."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from test_own_model import TinyResNet, colour_squares, write_pngs  # noqa: E402

from oodscope.detectors import create, load  # noqa: E402
from oodscope.errors import InputError, ModelFileError  # noqa: E402
from oodscope.upstream.adapter import ModelAdapter  # noqa: E402
from oodscope.upstream.onnx_model import OnnxModel  # noqa: E402

RTOL = 1e-5
NAMES = {"penultimate": "avgpool", "head": "fc"}


def export(model: torch.nn.Module, path: Path, dynamic: bool = True) -> Path:
    """``model`` as an ONNX file, as a user writes one (torch's TorchScript exporter; the dynamo one
    needs onnxscript)."""
    axes = {"images": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(2, 3, 64, 64),), str(path), input_names=["images"],
                          output_names=["logits"], dynamic_axes=axes, dynamo=False)
    return path


@pytest.fixture(scope="module")
def user_model() -> TinyResNet:
    """test_own_model's network with seeded weights, untrained: what is compared here is the same
    function computed by torch and by onnxruntime (training it would take most of this file's time)."""
    torch.manual_seed(0)
    return TinyResNet().eval()


@pytest.fixture(scope="module")
def onnx_file(user_model: TinyResNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(user_model, tmp_path_factory.mktemp("onnx") / "my_model.onnx")


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    x, y = colour_squares(120, 1)
    inside, _ = colour_squares(20, 2)
    outside = np.random.default_rng(3).integers(0, 255, (20, 3, 64, 64)).astype(np.uint8)
    return {"x": x, "y": y, "test": np.concatenate([inside, outside])}


def _float(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float32) / 255


def test_module_names_map_to_the_values_the_modules_output(user_model, onnx_file, images, tmp_path) -> None:
    taps = ["layer3", "layer4"]
    mine = ModelAdapter.from_file(onnx_file, taps=taps, **NAMES)
    assert isinstance(mine, OnnxModel)
    x = _float(images["test"][:7])
    hooked = {}
    handles = [getattr(user_model, n).register_forward_hook(lambda m, a, out, n=n: hooked.__setitem__(n, out))
               for n in (*taps, "avgpool")]
    try:
        with torch.no_grad():
            logits = user_model(x)
    finally:
        for h in handles:
            h.remove()
    got = mine.taps(x)
    assert set(got) == {"layer3", "layer4", "avgpool", "logits"}
    for name, want in {**hooked, "avgpool": hooked["avgpool"].flatten(1), "logits": logits}.items():
        np.testing.assert_allclose(got[name].numpy(), want.numpy(), rtol=RTOL, atol=RTOL * float(want.abs().max()))
    assert torch.equal(mine.head.weight, user_model.fc.weight) and torch.equal(mine.head.bias, user_model.fc.bias)
    by_value = OnnxModel(onnx_file, penultimate="/avgpool/GlobalAveragePool_output_0", head="logits")  # ONNX value names
    assert torch.equal(by_value.taps(x)["/avgpool/GlobalAveragePool_output_0"], got["avgpool"])
    assert torch.equal(by_value.head.weight, mine.head.weight)
    fixed = OnnxModel(export(user_model, tmp_path / "fixed.onnx", dynamic=False), **NAMES)  # one batch size: 2
    assert torch.equal(fixed.logits(x), mine.logits(x))  # run two at a time, the last batch padded


def test_the_dynamo_exporters_module_stacks_are_read(user_model, onnx_file, images, tmp_path) -> None:
    """torch.onnx.export's default (dynamo) exporter names nodes node_<op> and records each node's
    module stack in metadata_props["pkg.torch.onnx.name_scopes"] (['', 'layer4', 'layer4.bn2',
    <fx node>]): the exported graph rewritten so, with no scope left in the node names."""
    graph = onnx.load(str(onnx_file))
    for i, node in enumerate(graph.graph.node):
        parts = node.name.split("/")[1:-1] if node.name.startswith("/") else []
        chain = [".".join(parts[:j + 1]) for j in range(len(parts))]
        node.name = f"node_{node.op_type}_{i}"
        node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=repr(["", *chain, f"op_{i}"]))
    onnx.save(graph, str(tmp_path / "dynamo_like.onnx"))
    mine = OnnxModel(tmp_path / "dynamo_like.onnx", taps=["layer3"], **NAMES)
    assert mine.values == {"layer3": "/layer3/Relu_1_output_0", "avgpool": "/avgpool/GlobalAveragePool_output_0"}
    x = _float(images["test"][:4])
    reference = OnnxModel(onnx_file, taps=["layer3"], **NAMES).taps(x)
    assert all(torch.equal(v, reference[k]) for k, v in mine.taps(x).items())


def test_the_dynamo_exporter_itself(user_model, images, tmp_path) -> None:
    pytest.importorskip("onnxscript")  # the default exporter's dependency
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(user_model, (torch.rand(2, 3, 64, 64),), dynamo=True,
                                    dynamic_shapes=({0: torch.export.Dim("batch")},))
    program.save(str(tmp_path / "dynamo.onnx"))
    mine = OnnxModel(tmp_path / "dynamo.onnx", taps=["layer3"], **NAMES)
    x = _float(images["test"][:4])
    want = ModelAdapter(user_model, taps=["layer3"], **NAMES).taps(x)
    for name, t in mine.taps(x).items():
        np.testing.assert_allclose(t.numpy(), want[name].detach().numpy(), rtol=RTOL, atol=RTOL * float(want[name].abs().max()))


def test_scores_equal_the_torch_models_and_the_file_travels_with_the_detector(user_model, onnx_file, images,
                                                                              tmp_path) -> None:
    x, y, test = images["x"], images["y"], images["test"]
    torch_model = ModelAdapter(user_model, taps=["layer3"], **NAMES)
    mine = OnnxModel(onnx_file, taps=["layer3"], **NAMES)
    settings = {"msp": {}, "energy": {}, "mahalanobis": {"eps": 0.0}, "react": {}, "deep-knn": {"k": 3}, "gaussian": {}}
    fitted = {}
    for method, kw in settings.items():
        labels = {} if method in ("deep-knn", "gaussian") else {"labels": y}
        want = create(method, progress=False, **kw).fit(x, upstream=torch_model, **labels).score(test)
        fitted[method] = det = create(method, progress=False, **kw).fit(x, upstream=mine, **labels)
        # at the scores' scale: mahalanobis' standardised sum crosses zero, where float32 rounding
        # (the exporter folds each batch norm into its convolution) is not small relative to the value
        np.testing.assert_allclose(det.score(test), want, rtol=RTOL, atol=RTOL * np.abs(want).max(), err_msg=method)
    assert set(fitted["mahalanobis"].fitted["layers"]) == {"layer3", "avgpool"}
    det = fitted["mahalanobis"]
    det.save(tmp_path / "maha")
    assert (tmp_path / "maha" / "model.onnx").read_bytes() == onnx_file.read_bytes()
    again = load(tmp_path / "maha")  # the carried file stands in for the model
    assert isinstance(again.upstream, OnnxModel) and np.array_equal(again.score(test), det.score(test))
    assert np.array_equal(load(tmp_path / "maha", model=onnx_file).score(test), det.score(test))
    other = TinyResNet()
    other.load_state_dict(user_model.state_dict())
    with torch.no_grad():
        other.fc.bias += 1e-3  # one bias nudged: another model
    with pytest.raises(ModelFileError, match="not the one the detector was fitted on"):
        load(tmp_path / "maha", model=export(other.eval(), tmp_path / "other.onnx"))
    with pytest.raises(ModelFileError, match="not the one the detector was fitted on"):
        load(tmp_path / "maha", model=user_model)  # the same weights as a torch module: another model file
    with open(tmp_path / "maha" / "model.onnx", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ModelFileError, match="model.onnx: missing, or its checksum"):
        load(tmp_path / "maha")


def test_what_needs_gradients_is_refused_by_name(onnx_file, images) -> None:
    x, y, test = images["x"][:40], images["y"][:40], images["test"][:4]
    mine = OnnxModel(onnx_file, **NAMES)
    odin = create("odin", progress=False).fit(x, labels=y, upstream=mine)  # eps 0.0014: an input step
    with pytest.raises(InputError, match=r"^odin: needs the model's gradients .* use a \.pt2 program \(or, for an input step, eps=0\)$"):
        odin.score(test)
    assert create("odin", eps=0.0, progress=False).fit(x, labels=y, upstream=mine).score(test).shape == (4,)
    with pytest.raises(InputError, match=r"^mahalanobis: needs the model's gradients"):
        create("mahalanobis", eps=0.001, progress=False).fit(x, labels=y, upstream=mine)
    energy = create("energy", progress=False).fit(x, labels=y, upstream=mine)
    with pytest.raises(InputError, match=r"^energy: needs the model's gradients"):
        energy.differentiable_score(_float(test))  # what an attack on the detector needs
    with pytest.raises(InputError, match=r"^mc-dropout: needs the model's dropout"):
        create("mc-dropout", progress=False).fit(x, labels=y, upstream=mine).score(test)
    with pytest.raises(InputError, match=r"^msp: scores in bfloat16, and an ONNX model computes in float32"):
        create("msp", precision="bfloat16", progress=False).fit(x, labels=y, upstream=mine)


def test_bad_module_names_and_files_are_refused(onnx_file, tmp_path) -> None:
    with pytest.raises(InputError, match=r"'layer9' matches no module or value .*its modules: avgpool, .*layer4"):
        OnnxModel(onnx_file, penultimate="layer9")
    with pytest.raises(InputError, match=r"head 'layer4' is not a linear layer: its output comes from a Relu node"):
        OnnxModel(onnx_file, head="layer4")
    with pytest.raises(InputError, match="folded the batch norm after it"):  # conv + bn merged by the exporter
        OnnxModel(onnx_file, taps=["layer4.conv1"])
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    data = onnx_file.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    for bad in ("junk.onnx", "cut.onnx"):
        with pytest.raises(InputError, match="not an ONNX model, or a truncated one"):
            OnnxModel(tmp_path / bad, **NAMES)
    with pytest.raises(InputError, match="no such model file"):
        ModelAdapter.from_file(tmp_path / "absent.onnx")


def test_the_command_line_fits_scores_serves_and_thresholds_with_an_onnx_model(user_model, onnx_file, images,
                                                                                 tmp_path) -> None:
    from click.testing import CliRunner
    from scipy.special import logsumexp

    from oodscope.cli import cli
    from oodscope.export.loading import load_scorer

    x, y = images["x"][:60], images["y"][:60]
    write_pngs(tmp_path / "train", x, y)
    write_pngs(tmp_path / "new", images["test"])
    runner = CliRunner()
    r = runner.invoke(cli, ["fit", "--method", "energy", "--train", str(tmp_path / "train"), "--model", str(onnx_file),
                            "--penultimate", "avgpool", "--head", "fc", "--out", str(tmp_path / "energy")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "energy" / "model.onnx").read_bytes() == onnx_file.read_bytes()
    r = runner.invoke(cli, ["score", str(tmp_path / "energy"), str(tmp_path / "new"), "--out", str(tmp_path / "s.csv")])
    assert r.exit_code == 0, r.output
    score = {Path(row["file"]).name: float(row["score"]) for row in csv.DictReader((tmp_path / "s.csv").open())}
    with torch.no_grad():
        logits = user_model(_float(images["test"])).double().numpy()
    want = -logsumexp(logits, axis=1)  # the energy score from the torch module's logits, computed here
    got = np.array([score[f"{i:04d}.png"] for i in range(len(want))])
    np.testing.assert_allclose(got, want, rtol=RTOL)
    served = load_scorer(tmp_path / "energy")  # what `oodscope serve`'s worker loads
    np.testing.assert_allclose(served.score(images["test"]), want, rtol=RTOL)
    assert runner.invoke(cli, ["threshold", str(tmp_path / "energy"), "--accept", "0.9"]).exit_code == 0
    assert load(tmp_path / "energy").threshold is not None
    r = runner.invoke(cli, ["fit", "--method", "msp", "--train", str(tmp_path / "train"), "--model", str(onnx_file),
                            "--penultimate", "pool5", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "'pool5' matches no module or value" in r.output
