"""The memory of f's taps (oodscope.upstream.tap_memo): what it keeps, when it answers, and that
detectors sharing f score the same with it as without it while f runs once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oodscope.data import load as load_data
from oodscope.detectors import GeomDetector, LayersDetector
from oodscope.upstream import tap_memo
from oodscope.upstream.tap_memo import TapMemo, open_memo

CFG = {"widths": [8, 16, 16], "epochs": 2, "batch_size": 64, "progress": False, "g_steps": 5, "g_batch": 32,
       "head_hidden": 16, "head_width": 8}


class Counting(torch.nn.Module):
    """A network whose forward passes are counted."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.calls = 0

    def taps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        z = self.lin(x)
        return {"z1": z, "logits": z * 2}


def test_a_kept_batch_is_answered_without_a_pass_and_a_changed_one_is_not() -> None:
    net, memo = Counting(), TapMemo(1 << 20)
    x = torch.randn(4, 3)
    first = memo.taps(net, x, ("logits",), lambda: net.taps(x))
    again = memo.taps(net, x.clone(), ("logits",), lambda: net.taps(x))
    assert net.calls == 1 and (memo.hits, memo.misses) == (1, 1) and torch.equal(first["logits"], again["logits"])
    assert set(again) == {"logits"}
    y = x.clone()
    y[0, 0] += 1e-3  # another batch
    memo.taps(net, y, ("logits",), lambda: net.taps(y))
    with torch.no_grad():
        net.lin.bias += 1.0  # another network
    changed = memo.taps(net, x, ("logits",), lambda: net.taps(x))
    assert net.calls == 3 and torch.allclose(changed["logits"], net.taps(x)["logits"])


def test_taps_not_kept_are_computed_and_added_to_the_entry() -> None:
    net, memo = Counting(), TapMemo(1 << 20)
    x = torch.randn(4, 3)
    memo.taps(net, x, ("logits",), lambda: net.taps(x))
    both = memo.taps(net, x, ("z1", "logits"), lambda: net.taps(x))  # z1 was not kept: a pass
    assert net.calls == 2 and set(both) == {"z1", "logits"}
    memo.taps(net, x, ("z1",), lambda: net.taps(x))
    assert net.calls == 2 and len(memo) == 1 and memo.bytes == 2 * 4 * 2 * 4


def test_the_oldest_entries_go_beyond_max_bytes() -> None:
    net = Counting()
    memo = TapMemo(3 * 4 * 2 * 4)  # three entries of logits (4 x 2 float32)
    xs = [torch.randn(4, 3) for _ in range(4)]
    for x in xs:
        memo.taps(net, x, ("logits",), lambda x=x: net.taps(x))
    assert len(memo) == 3 and memo.bytes == 3 * 32
    memo.taps(net, xs[0], ("logits",), lambda: net.taps(xs[0]))  # the first was dropped
    assert net.calls == 5
    memo.taps(net, xs[3], ("logits",), lambda: net.taps(xs[3]))  # the newest is still there
    assert net.calls == 5
    memo.clear()
    assert (len(memo), memo.bytes) == (0, 0)
    memo.taps(net, xs[3], ("logits",), lambda: net.taps(xs[3]))
    assert net.calls == 6
    with pytest.raises(ValueError, match="max_bytes"):
        TapMemo(-1)


def test_nothing_is_kept_outside_a_block() -> None:
    assert tap_memo.current() is None
    with open_memo(1 << 20) as memo:
        assert tap_memo.current() is memo
    assert tap_memo.current() is None


@pytest.fixture(scope="module")
def shared_f():
    train = load_data("digits", "train")
    x = train.images[train.labels == 3]
    outliers = [train.images[train.labels == c][:8] for c in (5, 7)]
    geom = GeomDetector(**{k: v for k, v in CFG.items() if k in GeomDetector.defaults}).fit(x)
    return x, outliers, geom, load_data("digits", "test").images[:200]


def test_detectors_sharing_f_score_the_same_with_the_memo_and_f_runs_once(shared_f) -> None:
    x, outliers, geom, test = shared_f
    alone = [LayersDetector(**CFG).fit(x, o, upstream=geom) for o in outliers]
    plain = [alone[0].score(test), geom.score(test), alone[1].score(test)]
    with open_memo(1 << 30) as memo:
        first = [LayersDetector(**CFG).fit(x, o, upstream=geom) for o in outliers]
        passes = []
        for scorer, expected in zip((first[0], geom, first[1]), plain):
            before = memo.misses
            got = scorer.score(test)
            passes.append(memo.misses - before)
            np.testing.assert_array_equal(got, expected)
    # the first layers runs f under each transformation; geom reads the logits it kept, the second layers all it needs
    assert passes == [len(geom.transforms), 0, 0] and memo.hits >= 2 * len(geom.transforms)
    # the second fit read f's taps of the held-out images and the bank images that the first kept
    assert first[1].fitted["standardise"]["mean"][0] == alone[1].fitted["standardise"]["mean"][0]
    np.testing.assert_array_equal(first[1].bank.features, alone[1].bank.features)
