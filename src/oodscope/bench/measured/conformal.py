"""The ``conformal`` experiment: how well the guarantees of conformal p-values
(:mod:`oodscope.metrics.conformal`) hold on a benchmark's saved test scores, over many random
calibration/test splits of the in-distribution test images.

The p-value of a score ``s`` against ``n`` calibration scores is ``(1 + #{cal >= s}) / (n + 1)``
(Vovk, Gammerman & Shafer, "Algorithmic Learning in a Random World", 2005; Bates, Candès, Lei,
Romano & Sesia, "Testing for outliers with conformal p-values", Annals of Statistics, 2023). For
each cell of the source directories (``DIR/scores/*.npz``: I = its in-distribution test scores,
O = its OOD test scores) it measures three parts, each written atomically to
``OUT/parts/<cell>-<part>.json`` as it finishes (a rerun skips the finished ones):

* ``type1``: per split s, I permuted (seeded by the cell's key and s), its first half the
  calibration set, the second half the test set: the share of test images with ``p <= alpha``
  (type-I error, target ``<= alpha`` in the mean), and the share above today's threshold
  "accept 95 % of the held-out images" (:func:`oodscope.metrics.threshold_at_acceptance` moved by
  :func:`oodscope.pipeline.thresholds.clear_of`) set on the same calibration half; the empirical
  CDF of split 0's test p-values (the QQ figure).
* ``bh``: per batch size m and OOD share pi, per split: ``m (1 - pi)`` inliers drawn from I
  without replacement (the rest of I calibrates), ``m pi`` OOD images drawn from O without
  replacement; Benjamini & Hochberg ("Controlling the false discovery rate", JRSS B, 1995) at
  each q: FDP = false flags / max(flags, 1), power = true flags / (m pi). Target: mean FDR <= q.
  A configuration I cannot supply (inliers plus a calibration set reaching q, or O too small) is
  recorded as not feasible, with why.
* ``online``: streams of 10,000 images whose OOD share changes over time (:data:`SCHEDULE`),
  calibrated on a random half of I, inliers drawn with replacement from the other half, OOD with
  replacement from O, decided one at a time by ``lond`` (Javanmard & Montanari, Annals of
  Statistics, 2018) and ``lord++`` (Ramdas, Yang, Wainwright & Jordan, NeurIPS 2017): FDP at the
  end of each stream and power. The rules run vectorised over the streams with the exact
  recursions of :class:`oodscope.metrics.conformal.OnlineFDR` (the tests check that their
  decisions agree), since its one-p-value-at-a-time loop would take minutes per cell.

Tables and figures: :mod:`oodscope.bench.measured.conformal_tables`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import oodscope
from oodscope.atomic import write_json_atomic
from oodscope.errors import DataError, InputError
from oodscope.metrics.conformal import flag_alpha, flag_bh, gamma, images_needed, p_values
from oodscope.results import CORE_FIELDS, ResultsLog, first_per_cell, load_scores, row_key
from oodscope.results.scores import cell_file_id

PARTS = ("type1", "bh", "online")
PARTS_DIR = "parts"
ACCEPT = 0.95  # today's threshold: accept 95 % of the held-out images
SCHEDULE = [[2500, 0.0], [2500, 0.1], [2500, 0.5], [2500, 0.01]]  # (images, OOD share) in stream order
ONLINE_RULES = ("lond", "lord++")
STREAMS = 200  # streams per cell, at most (fewer when --splits is smaller)
QQ_GRID = sorted({*np.round(np.linspace(0, 0.1, 51), 6).tolist(), *np.round(np.linspace(0, 1, 101), 6).tolist()})
TRACE_EVERY = 50  # the FDP-over-time trace of stream 0 is kept every this many images
TRACE_Q = 0.1
SALT = {"type1": 1, "bh": 2, "online": 3}


@dataclass
class ConformalPlan:
    """What the experiment measures.

    Attributes:
        sources: Benchmark directories whose saved scores are read (``--from``).
        methods: Methods whose cells are measured (None: every method in the directories).
        splits: Random calibration/test splits per cell (type-I error and BH).
        streams: Streams per cell for the online rules (default: ``min(splits, STREAMS)``).
        alphas, qs, batches, shares, online_qs, schedule: The levels, batch sizes, OOD shares,
            online levels and the stream's OOD share over time.
    """

    sources: list[str]
    methods: list[str] | None = None
    splits: int = 1000
    streams: int | None = None
    alphas: list[float] = field(default_factory=lambda: [0.01, 0.05, 0.1])
    qs: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2])
    batches: list[int] = field(default_factory=lambda: [100, 1000])
    shares: list[float] = field(default_factory=lambda: [0.1, 0.5])
    online_qs: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2])
    schedule: list[list[float]] = field(default_factory=lambda: [list(s) for s in SCHEDULE])

    def __post_init__(self) -> None:
        if self.streams is None:
            self.streams = min(self.splits, STREAMS)
        if not self.sources:
            raise InputError("--suite conformal needs --from DIR: a benchmark directory with saved scores (DIR/scores)")
        if self.splits < 1 or self.streams < 1:
            raise InputError("--splits must be at least 1")
        levels = [*self.alphas, *self.qs, *self.shares, *self.online_qs]
        if any(not 0 < a < 1 for a in levels) or any(m < 1 for m in self.batches):
            raise InputError("conformal: levels and OOD shares must lie in (0, 1), batches be positive")
        if TRACE_Q not in self.online_qs:
            raise InputError(f"conformal: the online levels must include {TRACE_Q} (the traced one)")

    def params(self, part: str) -> dict[str, Any]:
        """The plan's values that decide the numbers of ``part`` (a part measured with others is stale)."""
        if part == "type1":
            return {"splits": self.splits, "alphas": self.alphas, "accept": ACCEPT, "qq_grid": len(QQ_GRID)}
        if part == "bh":
            return {"splits": self.splits, "qs": self.qs, "batches": self.batches, "shares": self.shares}
        return {"streams": self.streams, "qs": self.online_qs, "schedule": self.schedule, "rules": list(ONLINE_RULES),
                "trace_every": TRACE_EVERY}


@dataclass(frozen=True)
class ScoredCell:
    """A cell of a source directory with saved test scores."""

    source: Path
    row: dict[str, Any]

    @property
    def id(self) -> str:
        """A file-name-safe id: the scores file's id plus a hash of the source directory."""
        where = hashlib.sha1(str(self.source.resolve()).encode()).hexdigest()[:6]
        return f"{cell_file_id(self.row)}_{where}"

    @property
    def seed(self) -> int:
        """The splits' seed: from the cell's key, so the same cell gets the same splits wherever it is."""
        return int.from_bytes(hashlib.sha1(row_key(self.row).encode()).digest()[:8], "little")

    def describe(self) -> dict[str, Any]:
        return {"source": str(self.source), **{k: self.row.get(k) for k in CORE_FIELDS},
                "protocol_fields": self.row["protocol_fields"]}

    def load(self) -> tuple[np.ndarray, np.ndarray, str]:
        """(I, O, sha1 of the scores file).

        Raises:
            DataError: the scores file is missing, unreadable, or has no in-distribution or no OOD image.
        """
        path = self.source / self.row["scores_file"]
        arrays = load_scores(self.source, self.row)
        if arrays is None:
            raise DataError(f"{path}: missing")
        s, ood = arrays["scores"].astype(np.float64), arrays["is_ood"].astype(bool)
        if not np.all(np.isfinite(s)):
            raise DataError(f"{path}: scores hold NaN or inf")
        if ood.all() or not ood.any():
            raise DataError(f"{path}: needs both in-distribution and OOD test images")
        return s[~ood], s[ood], hashlib.sha1(path.read_bytes()).hexdigest()


def find_cells(plan: ConformalPlan) -> list[ScoredCell]:
    """The cells of ``plan.sources`` with a scores file, of ``plan.methods``.

    Raises:
        InputError: a source is not a benchmark directory, or a method named is in none of them.
    """
    cells: list[ScoredCell] = []
    seen: set[str] = set()
    for source in plan.sources:
        directory = Path(source)
        log = directory / "results.jsonl"
        if not log.is_file():
            raise InputError(f"--from {source}: not a benchmark directory (no results.jsonl)")
        for row in first_per_cell(ResultsLog(log).rows()).values():
            seen.add(row["method"])
            if row.get("scores_file") and (plan.methods is None or row["method"] in plan.methods):
                cells.append(ScoredCell(directory, row))
    stray = [m for m in plan.methods or [] if m not in seen]
    if stray:
        raise InputError(f"--methods: {', '.join(stray)} not in {', '.join(plan.sources)} (they hold {', '.join(sorted(seen))})")
    return cells


def _rng(seed: int, *path: int) -> np.random.Generator:
    return np.random.default_rng([seed, *path])


def stats(values: Any) -> dict[str, float]:
    """Mean, standard deviation (over the values) and count."""
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(v.size)}


def measure_type1(inside: np.ndarray, outside: np.ndarray, seed: int, plan: ConformalPlan) -> dict[str, Any]:
    """Type-I error of ``p <= alpha`` and the false-alarm rate of the 95 % threshold, over the splits."""
    from oodscope.metrics import threshold_at_acceptance
    from oodscope.pipeline.thresholds import clear_of

    n = inside.size
    n_cal = n // 2
    feasible = {a: n_cal >= images_needed(a) for a in plan.alphas}
    errors = np.zeros((plan.splits, len(plan.alphas)))
    alarms = np.zeros(plan.splits)
    ecdf: list[float] = []
    for s in range(plan.splits):
        perm = _rng(seed, SALT["type1"], s).permutation(n)
        cal, test = inside[perm[:n_cal]], inside[perm[n_cal:]]
        p = p_values(cal, test)
        errors[s] = [flag_alpha(p, a).mean() for a in plan.alphas]
        alarms[s] = np.mean(test > clear_of(threshold_at_acceptance(cal, ACCEPT), cal, "accepted"))
        if s == 0:
            ecdf = (np.searchsorted(np.sort(p), QQ_GRID, side="right") / p.size).tolist()
    alpha = {str(a): stats(errors[:, i]) if feasible[a] else
             {"why": f"{n_cal} calibration images cannot reach {a:g} (needs {images_needed(a)})"}
             for i, a in enumerate(plan.alphas)}
    return {"n_cal": n_cal, "n_test": n - n_cal, "alpha": alpha, "accept95": stats(alarms),
            "qq": {"u": QQ_GRID, "share": ecdf, "n": n - n_cal}}


def measure_bh(inside: np.ndarray, outside: np.ndarray, seed: int, plan: ConformalPlan) -> dict[str, Any]:
    """FDR and power of BH per batch size, OOD share and q, over the splits."""
    configs = []
    for c, (m, share) in enumerate((m, pi) for m in plan.batches for pi in plan.shares):
        k_out = int(round(m * share))
        k_in = m - k_out
        n_cal = inside.size - k_in
        base = {"m": m, "share": share, "inliers": k_in, "ood": k_out, "n_cal": n_cal}
        why = None
        if k_out > outside.size:
            why = f"{k_out} OOD images needed, {outside.size} there"
        elif n_cal < images_needed(max(plan.qs)):
            why = (f"{k_in} inliers + {images_needed(max(plan.qs))} calibration images needed, "
                   f"{inside.size} in-distribution images there")
        if why is not None:
            configs.append({**base, "why": why})
            continue
        fdp = np.zeros((plan.splits, len(plan.qs)))
        power = np.zeros_like(fdp)
        for s in range(plan.splits):
            r = _rng(seed, SALT["bh"], c, s)
            perm = r.permutation(inside.size)
            batch = np.r_[inside[perm[:k_in]], outside[r.choice(outside.size, k_out, replace=False)]]
            p = p_values(inside[perm[k_in:]], batch)
            for i, q in enumerate(plan.qs):
                flags = flag_bh(p, q) if n_cal >= images_needed(q) else np.zeros(m, dtype=bool)
                false, true = int(flags[:k_in].sum()), int(flags[k_in:].sum())
                fdp[s, i] = false / max(false + true, 1)
                power[s, i] = true / k_out if k_out else 0.0
        levels = {}
        for i, q in enumerate(plan.qs):
            levels[str(q)] = ({"fdr": stats(fdp[:, i]), "power": stats(power[:, i])} if n_cal >= images_needed(q) else
                              {"why": f"{n_cal} calibration images cannot reach {q:g} (needs {images_needed(q)})"})
        configs.append({**base, "q": levels})
    return {"configs": configs}


def lond(p: np.ndarray, q: float | np.ndarray) -> np.ndarray:
    """LOND's decisions on each row of ``p`` (streams x time) at level ``q`` (one, or one per row):
    at time t reject when ``p_t <= q gamma_t (R_{t-1} + 1)``, R the rejections so far (as
    :class:`OnlineFDR`)."""
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), p.shape[:1])
    g = gamma(np.arange(p.shape[1] + 1))
    rejected = np.zeros(p.shape[0])
    out = np.empty(p.shape, dtype=bool)
    for t in range(1, p.shape[1] + 1):
        d = p[:, t - 1] <= q * g[t] * (rejected + 1)
        out[:, t - 1] = d
        rejected += d
    return out


def lord_plus_plus(p: np.ndarray, q: float | np.ndarray, w0: float | np.ndarray | None = None) -> np.ndarray:
    """LORD++'s decisions on each row of ``p`` at level ``q`` (one, or one per row): level
    ``gamma_t w0 + (q - w0) gamma_{t - tau_1} + q sum_{j >= 2} gamma_{t - tau_j}``, tau_j the
    rejection times, ``w0`` default ``q / 2`` (as :class:`OnlineFDR`)."""
    n, horizon = p.shape
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), (n,))
    w0 = q / 2 if w0 is None else np.broadcast_to(np.asarray(w0, dtype=np.float64), (n,))
    g = gamma(np.arange(horizon + 1))
    never = horizon + 1  # a time not yet come: t - never < 0 -> gamma 0
    taus = np.full((n, 16), never, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    out = np.empty(p.shape, dtype=bool)
    for t in range(1, horizon + 1):
        level = g[t] * w0
        most = int(count.max())
        if most:
            level = level + np.where(count > 0, (q - w0) * g[np.maximum(t - taus[:, 0], 0)], 0.0)
            if most > 1:
                level = level + q * g[np.maximum(t - taus[:, 1:most], 0)].sum(axis=1)
        d = p[:, t - 1] <= level
        out[:, t - 1] = d
        if d.any():
            if most + 1 > taus.shape[1]:
                taus = np.concatenate([taus, np.full_like(taus, never)], axis=1)
            taus[rows[d], count[d]] = t
            count += d
    return out


RULES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"lond": lond, "lord++": lord_plus_plus}


def stream(inside: np.ndarray, outside: np.ndarray, r: np.random.Generator,
           schedule: list[list[float]]) -> tuple[np.ndarray, np.ndarray, int]:
    """One stream's p-values and OOD flags (calibrated on a random half of ``inside``) and the
    calibration size."""
    perm = r.permutation(inside.size)
    n_cal = inside.size // 2
    cal, pool = inside[perm[:n_cal]], inside[perm[n_cal:]]
    is_ood = np.concatenate([r.permutation(np.arange(int(n)) < int(round(n * share))) for n, share in schedule])
    scores = np.where(is_ood, outside[r.integers(outside.size, size=is_ood.size)], pool[r.integers(pool.size, size=is_ood.size)])
    return p_values(cal, scores), is_ood, n_cal


def measure_online(inside: np.ndarray, outside: np.ndarray, seed: int, plan: ConformalPlan) -> dict[str, Any]:
    """FDP at the end of each stream and power of each online rule at each q."""
    assert plan.streams is not None
    drawn = [stream(inside, outside, _rng(seed, SALT["online"], j), plan.schedule) for j in range(plan.streams)]
    p, is_ood, n_cal = np.stack([d[0] for d in drawn]), np.stack([d[1] for d in drawn]), drawn[0][2]
    g = gamma(np.arange(p.shape[1] + 1))
    ends = np.cumsum([int(n) for n, _ in plan.schedule])
    levels = np.repeat(np.asarray(plan.online_qs, dtype=np.float64), p.shape[0])  # every q at once: one row per (q, stream)
    rules: dict[str, Any] = {}
    for rule, decide in RULES.items():
        rules[rule] = {}
        every = decide(np.tile(p, (len(plan.online_qs), 1)), levels)
        for i, q in enumerate(plan.online_qs):
            d = every[i * p.shape[0]:(i + 1) * p.shape[0]]
            false, true = (d & ~is_ood).sum(axis=1), (d & is_ood).sum(axis=1)
            # without a rejection the level is q gamma_t (lond) or w0 gamma_t = q gamma_t / 2 (lord++): the
            # last time that can still reach the smallest p-value 1/(n_cal + 1)
            first = q * g[1:] * (1.0 if rule == "lond" else 0.5) >= 1.0 / (n_cal + 1)
            per_segment = [float(((d & is_ood)[:, a:b].sum(axis=1) / np.maximum(is_ood[:, a:b].sum(axis=1), 1)).mean())
                           for a, b in zip([0, *ends[:-1]], ends)]
            entry: dict[str, Any] = {"fdr": stats(false / np.maximum(false + true, 1)),
                                     "power": stats(true / np.maximum(is_ood.sum(axis=1), 1)),
                                     "rejections": stats(false + true), "power_per_segment": per_segment,
                                     "last_first_rejection": int(np.flatnonzero(first).max() + 1) if first.any() else 0}
            if q == TRACE_Q:
                cum_false, cum_all = np.cumsum(d[0] & ~is_ood[0]), np.cumsum(d[0])
                at = np.arange(TRACE_EVERY, p.shape[1] + 1, TRACE_EVERY) - 1
                entry["trace"] = {"t": (at + 1).tolist(), "fdp": (cum_false[at] / np.maximum(cum_all[at], 1)).tolist(),
                                  "rejections": cum_all[at].tolist(), "false": cum_false[at].tolist()}
            rules[rule][str(q)] = entry
    return {"n_cal": n_cal, "streams": plan.streams, "length": int(p.shape[1]), "rules": rules}


MEASURE = {"type1": measure_type1, "bh": measure_bh, "online": measure_online}


def part_path(out: Path, cell: ScoredCell, part: str) -> Path:
    return out / PARTS_DIR / f"{cell.id}-{part}.json"


def is_done(path: Path, params: dict[str, Any], digest: str) -> bool:
    """Whether ``path`` holds a part measured with ``params`` on the scores file of sha1 ``digest``."""
    if not path.is_file():
        return False
    try:
        part = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(part, dict) and part.get("params") == json.loads(json.dumps(params)) and part.get("scores_sha1") == digest


def check(plan: ConformalPlan, out: Path) -> list[ScoredCell]:
    """The cells ``plan`` measures into ``out``.

    Raises:
        InputError: ``out`` is a source, a source is not a benchmark directory, a method named is not
            there, or no cell has saved scores.
    """
    if any(Path(s).resolve() == out.resolve() for s in plan.sources):
        raise InputError("--out must be another directory than --from")
    cells = find_cells(plan)
    if not cells:
        raise InputError(f"no cell with saved scores in {', '.join(plan.sources)}"
                         + (f" of {', '.join(plan.methods)}" if plan.methods else ""))
    return cells


def run_conformal(plan: ConformalPlan, out: str | Path, progress: bool = True, command: list[str] | None = None,
                  run: dict[str, Any] | None = None, figures: bool = True) -> list[Path]:
    """Measure every unfinished part of every cell of ``plan`` into ``out`` and write the tables
    and (``figures``) the figures; returns the paths written (``table.md`` first).

    Raises:
        InputError: a source is not a benchmark directory, no cell has saved scores, another run
            holds ``out``, or a method named is not there.
    """
    from oodscope.bench.lock import directory_lock
    from oodscope.bench.measured.conformal_tables import FIGURES, write_outputs
    from oodscope.progress import message, progress as bar
    from oodscope.results import write_section

    directory = Path(out)
    cells = check(plan, directory)
    (directory / PARTS_DIR).mkdir(parents=True, exist_ok=True)
    with directory_lock(directory):
        write_section(directory, "measured", {"suite": "conformal", "plan": asdict(plan), "command": command, "run": run,
                                              "params": {p: plan.params(p) for p in PARTS},
                                              "oodscope_version": oodscope.__version__})
        todo: list[tuple[ScoredCell, list[str]]] = []
        loaded: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}
        skipped = 0
        for cell in cells:
            try:
                data = cell.load()
            except DataError as e:
                message(f"conformal: left out {cell.id}: {e}")
                continue
            parts = [p for p in PARTS if not is_done(part_path(directory, cell, p), plan.params(p), data[2])]
            skipped += len(PARTS) - len(parts)
            if parts:
                todo.append((cell, parts))
                loaded[cell.id] = data
        total = sum(len(p) for _, p in todo)
        message(f"conformal: {len(cells)} cells, {total} parts to measure, {skipped} finished before -> {directory}")
        with bar(total, "conformal", enabled=progress, unit="part") as shown:
            for cell, parts in todo:
                inside, outside, digest = loaded.pop(cell.id)
                for part in parts:
                    began = time.perf_counter()
                    result = MEASURE[part](inside, outside, cell.seed, plan)
                    write_json_atomic(part_path(directory, cell, part), {
                        "cell": cell.describe(), "part": part, "params": plan.params(part), "scores_sha1": digest,
                        "n_in": int(inside.size), "n_out": int(outside.size), "result": result,
                        "seconds": round(time.perf_counter() - began, 3), "oodscope_version": oodscope.__version__})
                    shown.update(1)
        # the figures show the parts only: redrawn when one was measured (or a figure is missing)
        return write_outputs(directory, figures=figures and (total > 0 or not all((directory / f).is_file() for f in FIGURES)))
