"""CIFAR-10 end to end on small archives written in the original format: the table3 suite
(geom, geom+, bce, layers with CIFAR-100 as the outlier set) with the CIFAR training augmentation."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from test_data_archives import write_cifar10, write_cifar100

from oodscope.cli import cli
from oodscope.data import load


def test_cifar10_table3_suite_end_to_end(tmp_path):
    root = tmp_path / "data"
    (root / "cifar10").mkdir(parents=True)
    (root / "cifar100").mkdir()
    write_cifar10(root / "cifar10" / "cifar-10-python.tar.gz", seed=3, per_batch=20)
    write_cifar100(root / "cifar100" / "cifar-100-python.tar.gz")
    from oodscope.data import DATASETS

    # the archives are synthetic: accept their checksums for this test only
    import dataclasses
    import hashlib

    def md5(p):
        return hashlib.md5(p.read_bytes()).hexdigest()

    saved = {name: DATASETS[name] for name in ("cifar10", "cifar100")}
    try:
        for name, fname in (("cifar10", "cifar-10-python.tar.gz"), ("cifar100", "cifar-100-python.tar.gz")):
            spec = DATASETS[name]
            files = dict(spec.files)
            files[fname] = dataclasses.replace(files[fname], md5=md5(root / name / fname), size=None)
            DATASETS[name] = dataclasses.replace(spec, files=files)
        train, test = load("cifar10", "train", root=root), load("cifar10", "test", root=root)
        assert train.images.shape[1:] == (3, 32, 32)
        counts = [(np.sum(train.labels == c), np.sum(test.labels == c)) for c in range(10)]
        c = max(range(10), key=lambda k: (min(counts[k]) > 0, counts[k][0]))
        out = tmp_path / "t3"
        res = CliRunner().invoke(cli, ["bench", "--suite", "table3", "--dataset", "cifar10", "--preset", "smoke",
                                       "--classes", str(c), "--data-root", str(root), "--no-download",
                                       "--no-progress", "--out", str(out)])
        assert res.exit_code == 0, res.output
    finally:
        DATASETS.update(saved)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["method"] for r in rows) == ["bce", "geom", "geom+", "layers"]
    assert all(r["settings"]["augment"] == "cifar" for r in rows)
    assert {r["protocol_fields"]["oe_dataset"] for r in rows} == {"cifar100"}
    assert all(0 <= r["metrics"]["auroc"] <= 100 for r in rows)
    table = (out / "table.md").read_text()
    paper_names = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    row = [line for line in table.splitlines() if line.startswith(f"| {paper_names[c]} |")]
    assert len(row) == 1 and row[0].count("|") == 10, table  # ours and the paper's value per method
