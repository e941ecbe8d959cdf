"""Adding a detector is one file: the README's example, dropped into the detectors package's path,
is discovered, registered and usable by the library and the benchmark, with nothing else changed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
IMPORTS = """\
import torch

from oodscope.detectors.base import Detector, FitData, Requires
from oodscope.upstream.classifier import CLASSIFIER_DEFAULTS, CLASSIFIER_PRESETS, Classifier
from oodscope.detectors.registry import register
"""

CHECK = """
import sys
import numpy as np
import oodscope.detectors as detectors
detectors.__path__.append(sys.argv[1])
detectors._discover()
from oodscope.data import load
from oodscope.detectors import create, load as load_model, registry
from oodscope.bench.presets import method_infos

assert "entropy" in registry(), list(registry())
assert method_infos(["entropy"])[0].needs_labels
train, test = load("digits", "train"), load("digits", "test")
keep = train.labels < 5
det = create("entropy", widths=[4, 8], hidden=16, epochs=3, progress=False, temperature=2.0)
det.fit(train.subset(keep))
out = det.outputs(test.images[:20])
z = out["logits"] / 2.0
p = np.exp(z - z.max(axis=1, keepdims=True))
p /= p.sum(axis=1, keepdims=True)
np.testing.assert_allclose(out["score"], -(p * np.log(p)).sum(axis=1), rtol=1e-4, atol=1e-5)
back = load_model(det.save(sys.argv[1] + "/model"))
np.testing.assert_array_equal(back.score(test.images[:20]), out["score"])
print("ok")
"""


def readme_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Add a detector", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_is_a_whole_detector(tmp_path: Path) -> None:
    docstring, body = readme_example().split("\n", 1)  # the example leaves its imports out
    (tmp_path / "entropy.py").write_text(docstring + "\n\n" + IMPORTS + "\n" + body)
    done = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
