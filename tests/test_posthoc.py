"""Post hoc detectors on a classifier's logits: ``energy`` and ``max-logit`` against their
definitions, and all three post hoc scores (msp, energy, max-logit) sharing one classifier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from oodscope.cli import cli
from oodscope.detectors import create
from oodscope.errors import InputError


@pytest.fixture(scope="module")
def toy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (60, 1, 12, 12), dtype=np.uint8), np.arange(60) % 3


def _fit(method: str, toy, **kw):
    x, labels = toy
    return create(method, widths=[4, 8], hidden=8, epochs=2, progress=False, **kw).fit(x, labels=labels)


def test_energy_is_minus_t_logsumexp_of_the_logits(toy) -> None:
    det = _fit("energy", toy, temperature=2.0)
    out = det.outputs(toy[0][:9])
    z = out["logits"].astype(np.float64) / 2.0
    expected = -2.0 * (z.max(axis=1) + np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1)))
    np.testing.assert_allclose(out["score"], expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(InputError, match="temperature"):
        create("energy", temperature=0.0)


def test_max_logit_is_minus_the_largest_logit_and_the_low_temperature_energy(toy) -> None:
    det = _fit("max-logit", toy)
    out = det.outputs(toy[0][:9])
    np.testing.assert_array_equal(out["score"], -out["logits"].max(axis=1).astype(np.float64))
    cold = _fit("energy", toy, temperature=1e-3)  # same seed and settings: the same classifier
    np.testing.assert_allclose(cold.score(toy[0][:9]), out["score"], atol=1e-2)


def test_post_hoc_scores_share_one_classifier_on_split_mnist(tmp_path: Path, data_root: Path) -> None:
    out = tmp_path / "posthoc"
    r = CliRunner().invoke(cli, ["bench", "--protocol", "split-mnist", "--methods", "msp,energy,max-logit",
                                 "--seeds", "0", "--preset", "smoke", "--data-root", str(data_root), "--no-download",
                                 "--no-progress", "--threads", "1", "--no-disk-cache", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [row["method"] for row in rows] == ["msp", "energy", "max-logit"]
    assert [row["upstream"]["reused"] for row in rows] == [False, True, True]
    assert len({row["metrics"]["accuracy"] for row in rows}) == 1
    assert all(row["metrics"]["auroc"] > 60 for row in rows)
