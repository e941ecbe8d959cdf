"""Tables and figures of the ``conformal`` experiment (:mod:`oodscope.bench.measured.conformal`),
from its parts (``OUT/parts/*.json``): ``table.md`` (type-I error, BH, online rules, each with its
target and whether it is met), ``csv/*.csv`` (every table's numbers, per class for one-class
cells, and every figure's), ``qq.png``, ``fdr.png`` and ``online.png``.

Cells are pooled per group: source directory (when there are several), protocol (the benchmark,
or one-class on a data set) and method. Pooled over seeds and classes, a group's mean is that of
every split of every cell and its ± the standard deviation over them; a target counts as met
(✓) when the mean is at most the target, nearly (≈) when within two standard errors of the mean
(std / sqrt(splits x cells): Monte Carlo error), and missed (✗) otherwise.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from oodscope.atomic import write_atomic, write_text_atomic
from oodscope.errors import DataError
from oodscope.results import Table, label, read_section

PARTS_DIR = "parts"
CSV_DIR = "csv"
ALL = "all"
Group = tuple[str, str, str]  # source, protocol, method


def read_parts(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """Every part of the directory whose settings are those of its recorded plan, by part name.

    Raises:
        DataError: a part file is not a JSON object.
    """
    params = (read_section(directory, "measured") or {}).get("params")  # each part's settings, as the plan recorded them
    wanted = json.loads(json.dumps(params)) if isinstance(params, dict) else None
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted((directory / PARTS_DIR).glob("*.json")):
        try:
            part = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not a part of the conformal experiment ({e})") from None
        if not isinstance(part, dict) or "part" not in part or "cell" not in part:
            raise DataError(f"{path}: not a part of the conformal experiment")
        if wanted is None or part.get("params") == wanted.get(part["part"]):
            out[part["part"]].append(part)
    return out


def group_of(cell: dict[str, Any], sources: int) -> Group:
    f = cell["protocol_fields"]
    protocol = f.get("benchmark") or f"{cell['protocol']} {cell['dataset']}"
    n_oe = f.get("n_oe")
    method = label(cell["method"], cell.get("variant")) + (f" ({n_oe} outliers)" if n_oe not in (None, 0, "0") else "")
    return (Path(cell["source"]).name if sources > 1 else "", protocol, method)


def class_of(cell: dict[str, Any]) -> Any:
    return cell["protocol_fields"].get("id_class", ALL)


def pool(entries: list[dict[str, Any]]) -> dict[str, float]:
    """Mean and standard deviation over every split of every cell (each entry: mean, std, n)."""
    n = sum(e["n"] for e in entries)
    mean = sum(e["n"] * e["mean"] for e in entries) / n
    second = sum(e["n"] * (e["std"] ** 2 + e["mean"] ** 2) for e in entries) / n
    std = math.sqrt(max(second - mean ** 2, 0.0))
    return {"mean": mean, "std": std, "n": n, "se": std / math.sqrt(n), "cells": len(entries)}


def verdict(s: dict[str, float], target: float) -> str:
    if s["mean"] <= target:
        return "✓"
    return "≈" if s["mean"] <= target + 2 * s["se"] else "✗"


def pct(s: dict[str, float]) -> str:
    return f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}"


def span(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}–{hi}"


class Pooled:
    """Stats of the cells' parts, pooled per (group, class, configuration); class ``all`` pools
    over classes (and always over seeds)."""

    def __init__(self, parts: list[dict[str, Any]], sources: int) -> None:
        self.stats: dict[tuple[Group, Any, tuple[Any, ...]], list[dict[str, Any]]] = defaultdict(list)
        self.why: dict[tuple[Group, tuple[Any, ...]], list[str]] = defaultdict(list)
        self.cells: dict[Group, int] = defaultdict(int)
        self.sizes: dict[tuple[Group, str], list[int]] = defaultdict(list)
        self.parts = parts
        self.sources = sources

    def add(self, part: dict[str, Any], config: tuple[Any, ...], s: dict[str, Any]) -> None:
        g, c = group_of(part["cell"], self.sources), class_of(part["cell"])
        self.stats[(g, ALL, config)].append(s)
        if c != ALL:
            self.stats[(g, c, config)].append(s)

    def refuse(self, part: dict[str, Any], config: tuple[Any, ...], why: str) -> None:
        cell = part["cell"]
        where = f"class {class_of(cell)}, seed {cell['seed']}" if class_of(cell) != ALL else f"seed {cell['seed']}"
        self.why[(group_of(cell, self.sources), config)].append(f"{where}: {why}")

    def get(self, g: Group, config: tuple[Any, ...], c: Any = ALL) -> dict[str, float] | None:
        entries = self.stats.get((g, c, config))
        return pool(entries) if entries else None

    def groups(self) -> list[Group]:
        return sorted({group_of(p["cell"], self.sources) for p in self.parts})

    def classes(self, g: Group) -> list[Any]:
        return sorted({k[1] for k in self.stats if k[0] == g and k[1] != ALL}, key=str)


def _sources(parts: dict[str, list[dict[str, Any]]]) -> int:
    return len({p["cell"]["source"] for ps in parts.values() for p in ps})


def _head(g: Group, sources: int) -> list[str]:
    return ([g[0]] if sources > 1 else []) + [g[1], g[2]]


def _head_names(sources: int) -> list[str]:
    return (["source"] if sources > 1 else []) + ["protocol", "method"]


def _align(sources: int, left: int, width: int) -> list[str | None]:
    """The group's columns and ``left`` more on the left, the rest (numbers) on the right."""
    n = len(_head_names(sources)) + left
    return ["left"] * n + ["right"] * (width - n)


def type1(parts: list[dict[str, Any]], sources: int) -> tuple[Pooled, list[float]]:
    pooled = Pooled(parts, sources)
    alphas: list[float] = []
    for part in parts:
        r = part["result"]
        g = group_of(part["cell"], sources)
        pooled.cells[g] += 1
        pooled.sizes[(g, "n_cal")].append(r["n_cal"])
        pooled.sizes[(g, "n_test")].append(r["n_test"])
        for a, s in r["alpha"].items():
            alphas.append(float(a))
            if "why" in s:
                pooled.refuse(part, ("alpha", float(a)), s["why"])
            else:
                pooled.add(part, ("alpha", float(a)), s)
        pooled.add(part, ("accept", 0.95), r["accept95"])
    return pooled, sorted(set(alphas))


def type1_table(parts: list[dict[str, Any]], sources: int) -> tuple[Table, list[list[Any]]]:
    pooled, alphas = type1(parts, sources)
    table = Table([*_head_names(sources), "cells", "calibration / test images", *[f"α = {a:g}" for a in alphas],
                   "accept-95 % threshold"],
                  caption="Per-image rule p ≤ α: type-I error (%) of in-distribution test images, mean ± std over "
                          "random calibration/test halves (and cells); target ≤ α in the mean. Last column: the "
                          "false-alarm rate (%) of today's threshold accepting 95 % of the calibration half, on the "
                          "same test halves (compare with α = 0.05)")
    table.align = _align(sources, 0, len(table.header))
    csv: list[list[Any]] = [[*_head_names(3), "class", "rule", "level", "mean", "std", "se", "splits x cells", "cells",
                             "target", "met"]]
    for g in pooled.groups():
        cells = [f"{pct(s)} {verdict(s, a)}" if (s := pooled.get(g, ("alpha", a))) else "not feasible" for a in alphas]
        acc = pooled.get(g, ("accept", 0.95))
        table.rows.append([*_head(g, sources), str(pooled.cells[g]),
                           f"{span(pooled.sizes[(g, 'n_cal')])} / {span(pooled.sizes[(g, 'n_test')])}", *cells,
                           f"{pct(acc)} {verdict(acc, 0.05)}" if acc else "–"])
        for c in [ALL, *pooled.classes(g)]:
            for rule, level, target in [*[("p <= alpha", a, a) for a in alphas], ("accept-95%", 0.95, 0.05)]:
                s = pooled.get(g, ("alpha" if rule != "accept-95%" else "accept", level), c)
                if s:
                    csv.append([*g, c, rule, level, s["mean"], s["std"], s["se"], s["n"], s["cells"], target, verdict(s, target)])
    return table, csv


def bh_table(parts: list[dict[str, Any]], sources: int) -> tuple[Table, list[list[Any]], list[str], Pooled, list[float]]:
    pooled = Pooled(parts, sources)
    qs: set[float] = set()
    configs: set[tuple[int, float]] = set()
    for part in parts:
        g = group_of(part["cell"], sources)
        pooled.cells[g] += 1
        for c in part["result"]["configs"]:
            key = (c["m"], c["share"])
            configs.add(key)
            if "why" in c:
                pooled.refuse(part, key, c["why"])
                continue
            pooled.sizes[(g, f"cal {key}")].append(c["n_cal"])
            for q, v in c["q"].items():
                qs.add(float(q))
                if "why" in v:
                    pooled.refuse(part, (*key, float(q)), v["why"])
                else:
                    pooled.add(part, (*key, float(q), "fdr"), v["fdr"])
                    pooled.add(part, (*key, float(q), "power"), v["power"])
    levels = sorted(qs)
    table = Table([*_head_names(sources), "batch", "OOD share", "calibration images", "cells",
                   *[f"q = {q:g}" for q in levels]],
                  caption="Benjamini–Hochberg on batches of conformal p-values: FDR (%) mean ± std over random "
                          "batches (and cells), target ≤ q in the mean (BH's bound is (1 − OOD share) q); in "
                          "brackets the power (%): OOD images flagged")
    table.align = _align(sources, 0, len(table.header))
    csv: list[list[Any]] = [[*_head_names(3), "class", "batch", "ood_share", "q", "fdr_mean", "fdr_std", "fdr_se",
                             "power_mean", "power_std", "splits x cells", "cells", "target", "met"]]
    notes: list[str] = []
    for g in pooled.groups():
        for key in sorted(configs):
            why = pooled.why.get((g, key), [])
            done = pooled.cells[g] - len(why)
            row = [*_head(g, sources), str(key[0]), f"{100 * key[1]:g} %",
                   span(pooled.sizes[(g, f"cal {key}")]) if done else "–", f"{done} of {pooled.cells[g]}"]
            for q in levels:
                fdr, power = pooled.get(g, (*key, q, "fdr")), pooled.get(g, (*key, q, "power"))
                row.append(f"{pct(fdr)} {verdict(fdr, q)} ({100 * power['mean']:.1f})" if fdr and power else "not feasible")
                for c in [ALL, *pooled.classes(g)]:
                    f_, p_ = pooled.get(g, (*key, q, "fdr"), c), pooled.get(g, (*key, q, "power"), c)
                    if f_ and p_:
                        csv.append([*g, c, key[0], key[1], q, f_["mean"], f_["std"], f_["se"], p_["mean"], p_["std"],
                                    f_["n"], f_["cells"], q, verdict(f_, q)])
                notes += [f"{g[2]} ({g[1]}), batch {key[0]}, OOD share {key[1]:g}, q = {q:g}: {w}"
                          for w in pooled.why.get((g, (*key, q)), [])]
            table.rows.append(row)
            notes += [f"{g[2]} ({g[1]}), batch {key[0]}, OOD share {key[1]:g} not feasible: {w}" for w in why]
    return table, csv, notes, pooled, levels


def online_table(parts: list[dict[str, Any]], sources: int) -> tuple[Table, list[list[Any]], str]:
    pooled = Pooled(parts, sources)
    qs: set[float] = set()
    rules: list[str] = []
    streams, length, schedule = set(), set(), None
    segments: dict[tuple[Group, Any, str, float], list[list[float]]] = defaultdict(list)
    last: dict[tuple[Group, str], list[int]] = defaultdict(list)
    for part in parts:
        r, g = part["result"], group_of(part["cell"], sources)
        pooled.cells[g] += 1
        pooled.sizes[(g, "n_cal")].append(r["n_cal"])
        streams.add(r["streams"])
        length.add(r["length"])
        schedule = part["params"]["schedule"]
        for rule, by_q in r["rules"].items():
            rules += [rule] if rule not in rules else []
            for q, v in by_q.items():
                qs.add(float(q))
                for what in ("fdr", "power", "rejections"):
                    pooled.add(part, (rule, float(q), what), v[what])
                for c in {ALL, class_of(part["cell"])}:
                    segments[(g, c, rule, float(q))].append(v["power_per_segment"])
                if float(q) == 0.1:
                    last[(g, rule)].append(v["last_first_rejection"])
    levels = sorted(qs)
    shares = ", ".join(f"{100 * s:g} % for {int(n)}" for n, s in schedule or [])
    table = Table([*_head_names(sources), "rule", "cells", "calibration images", "last t of a first rejection (q = 0.1)",
                   *[f"q = {q:g}" for q in levels]],
                  caption=f"Online rules on streams of {span(sorted(length) or [0])} images (OOD share over time: {shares}; "
                          f"{span(sorted(streams) or [0])} streams per cell): FDR (%) at the end, mean ± std over streams "
                          "(and cells), target ≤ q in the mean; in brackets the power (%) and the mean number of "
                          "rejections. Before any rejection a rule's level is q γ_t (lond) or q γ_t / 2 (lord++); past the "
                          "time shown it is below the smallest p-value 1/(n + 1), so a rule that has rejected nothing by "
                          "then never will")
    table.align = _align(sources, 1, len(table.header))
    csv: list[list[Any]] = [[*_head_names(3), "class", "rule", "q", "fdr_mean", "fdr_std", "fdr_se", "power_mean",
                             "power_std", "rejections_mean", "power_per_segment", "streams x cells", "cells", "target", "met"]]
    for g in pooled.groups():
        for rule in rules:
            row = [*_head(g, sources), rule, str(pooled.cells[g]), span(pooled.sizes[(g, "n_cal")]), span(last[(g, rule)])]
            for q in levels:
                f_, p_, n_ = (pooled.get(g, (rule, q, w)) for w in ("fdr", "power", "rejections"))
                row.append(f"{pct(f_)} {verdict(f_, q)} ({100 * p_['mean']:.1f}, {n_['mean']:.1f})" if f_ and p_ and n_ else "–")
                for c in [ALL, *pooled.classes(g)]:
                    f_, p_, n_ = (pooled.get(g, (rule, q, w), c) for w in ("fdr", "power", "rejections"))
                    if f_ and p_ and n_:
                        seg = segments[(g, c, rule, q)]
                        per = " ".join(f"{sum(x) / len(x):.4f}" for x in zip(*seg))
                        csv.append([*g, c, rule, q, f_["mean"], f_["std"], f_["se"], p_["mean"], p_["std"], n_["mean"], per,
                                    f_["n"], f_["cells"], q, verdict(f_, q)])
            table.rows.append(row)
    return table, csv, shares


def tables(directory: Path) -> tuple[list[tuple[str, Table]], list[str], dict[str, list[list[Any]]]]:
    """The experiment's tables (heading, table), notes and CSV rows, from its parts."""
    parts = read_parts(directory)
    sources = _sources(parts)
    out: list[tuple[str, Table]] = []
    notes: list[str] = []
    csvs: dict[str, list[list[Any]]] = {}
    if parts.get("type1"):
        t, csvs["type1"] = type1_table(parts["type1"], sources)
        out.append(("Per-image rule: type-I error", t))
    if parts.get("bh"):
        t, csvs["bh"], why, _, _ = bh_table(parts["bh"], sources)
        out.append(("Benjamini–Hochberg per batch: FDR and power", t))
        notes += why
    if parts.get("online"):
        t, csvs["online"], _ = online_table(parts["online"], sources)
        out.append(("Online rules on a stream: FDR and power", t))
    return out, notes, csvs


def render(directory: Path, found: list[tuple[str, Table]], notes: list[str]) -> str:
    plan = (read_section(directory, "measured") or {}).get("plan") or {}
    lines = ["# Conformal p-values: measured guarantees", "",
             f"Sources: {', '.join(plan.get('sources') or []) or '–'}; methods: {', '.join(plan.get('methods') or []) or 'all'}; "
             f"{plan.get('splits', '–')} splits per cell, {plan.get('streams', '–')} streams per cell. "
             "✓ target met in the mean, ≈ within two standard errors of it (Monte Carlo error), ✗ missed.", ""]
    for heading, t in found:
        lines += [f"## {heading}", "", t.caption + ".", "", t.markdown(), ""]
    if notes:
        lines += ["Not feasible:", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def _csv_text(rows: list[list[Any]]) -> str:
    return Table([str(c) for c in rows[0]], [[f"{c:.6g}" if isinstance(c, float) else str(c) for c in r] for r in rows[1:]]).csv()


FIGURES = ("qq.png", "fdr.png", "online.png")


def write_outputs(directory: str | Path, figures: bool = True) -> list[Path]:
    """Write ``table.md``, ``csv/*.csv`` and (``figures``) the figures from the directory's parts;
    the paths."""
    directory = Path(directory)
    found, notes, csvs = tables(directory)
    paths = [write_text_atomic(directory / "table.md", render(directory, found, notes))]
    (directory / CSV_DIR).mkdir(exist_ok=True)
    parts = read_parts(directory)
    csvs.update(figure_csvs(parts))
    for name, rows in csvs.items():
        if len(rows) > 1:
            paths.append(write_text_atomic(directory / CSV_DIR / f"{name}.csv", _csv_text(rows)))
    return paths + (draw(directory, parts) if figures else [])


def figure_csvs(parts: dict[str, list[dict[str, Any]]]) -> dict[str, list[list[Any]]]:
    """The numbers of each figure: ``qq`` (share of split 0's in-distribution test p-values <= u,
    pooled over the group's cells), ``fdr`` (BH's mean FDR per q) and ``online_trace`` (FDP over
    time of stream 0 of the first cell of each group, q = 0.1)."""
    sources = _sources(parts)
    out: dict[str, list[list[Any]]] = {}
    qq: dict[Group, list[tuple[int, list[float]]]] = defaultdict(list)
    grid: list[float] = []
    for p in parts.get("type1", []):
        grid = p["result"]["qq"]["u"]
        qq[group_of(p["cell"], sources)].append((p["result"]["qq"]["n"], p["result"]["qq"]["share"]))
    out["qq"] = [[*_head_names(3), "u", "share_p_at_most_u"]]
    for g, entries in sorted(qq.items()):
        total = sum(n for n, _ in entries)
        for i, u in enumerate(grid):
            out["qq"].append([*g, u, sum(n * s[i] for n, s in entries) / total])
    if parts.get("bh"):
        _, _, _, pooled, levels = bh_table(parts["bh"], sources)
        out["fdr"] = [[*_head_names(3), "batch", "ood_share", "q", "fdr_mean", "fdr_se", "bound"]]
        for (g, c, config), _ in sorted(pooled.stats.items(), key=lambda kv: str(kv[0])):
            if c == ALL and config[-1] == "fdr":
                s = pooled.get(g, config)
                assert s is not None
                out["fdr"].append([*g, config[0], config[1], config[2], s["mean"], s["se"], (1 - config[1]) * config[2]])
    out["online_trace"] = [[*_head_names(3), "cell", "rule", "t", "fdp", "rejections", "false_rejections"]]
    firsts: dict[Group, dict[str, Any]] = {}
    for p in parts.get("online", []):
        firsts.setdefault(group_of(p["cell"], sources), p)
    for g, p in sorted(firsts.items()):
        for rule, by_q in p["result"]["rules"].items():
            tr = by_q.get("0.1", {}).get("trace")
            if tr:
                for t, f, n, v in zip(tr["t"], tr["fdp"], tr["rejections"], tr["false"]):
                    out["online_trace"].append([*g, f"seed {p['cell']['seed']}", rule, t, f, n, v])
    return out


def _name(g: Group) -> str:
    return " · ".join(x for x in g if x)


def draw(directory: Path, parts: dict[str, list[dict[str, Any]]]) -> list[Path]:
    """``qq.png``, ``fdr.png`` and ``online.png`` (those the parts allow)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    csvs = figure_csvs(parts)
    paths = []

    def save(fig: Figure, name: str) -> None:
        paths.append(write_atomic(directory / name, lambda f: fig.savefig(f, format="png", dpi=110)))

    qq: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in csvs["qq"][1:]:
        qq[_name(tuple(row[:3]))].append((row[3], row[4]))
    if qq:
        fig = Figure(figsize=(10, 4.4))  # margins set by hand: a layout engine doubles the drawing time
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.9, wspace=0.22)
        for ax, top in zip(fig.subplots(1, 2), (1.0, 0.1)):
            for name, pts in qq.items():
                ax.plot([u for u, _ in pts if u <= top], [s for u, s in pts if u <= top], label=name, lw=1.2)
            ax.plot([0, top], [0, top], "k--", lw=0.8, label="uniform (valid: at or below)")
            ax.set(xlim=(0, top), ylim=(0, top), xlabel="u", ylabel="share of in-distribution p-values ≤ u")
        fig.axes[0].legend(fontsize=7)
        fig.suptitle("Conformal p-values of in-distribution test images against the uniform (split 0, pooled over cells)")
        save(fig, "qq.png")
    if len(csvs.get("fdr", [])) > 1:
        rows = csvs["fdr"][1:]
        configs = sorted({(r[3], r[4]) for r in rows})
        fig = Figure(figsize=(3.4 * len(configs), 3.6))
        fig.subplots_adjust(left=0.25 / len(configs), right=0.99, bottom=0.14, top=0.83, wspace=0.3)
        axes = fig.subplots(1, len(configs), squeeze=False)[0]
        for ax, (m, share) in zip(axes, configs):
            mine = [r for r in rows if (r[3], r[4]) == (m, share)]
            top = max(r[5] for r in mine)
            for name in dict.fromkeys(_name(tuple(r[:3])) for r in mine):
                pts = sorted((r[5], r[6], r[7]) for r in mine if _name(tuple(r[:3])) == name)
                ax.errorbar([q for q, _, _ in pts], [f for _, f, _ in pts], yerr=[2 * e for _, _, e in pts], marker="o",
                            ms=3, lw=1, capsize=2, label=name)
            ax.plot([0, top], [0, top], "k--", lw=0.8, label="FDR = q")
            ax.plot([0, top], [0, (1 - share) * top], "k:", lw=0.8, label="(1 − OOD share) q")
            ax.set(xlabel="q", ylabel="mean FDR", title=f"batch {m}, OOD share {share:g}", xlim=(0, top * 1.05))
        axes[0].legend(fontsize=7)
        fig.suptitle("Benjamini–Hochberg: mean FDR against q (bars: ± 2 standard errors)")
        save(fig, "fdr.png")
    trace = csvs["online_trace"][1:]
    if trace:
        rules = list(dict.fromkeys(r[4] for r in trace))
        schedule = parts["online"][0]["params"]["schedule"]
        ends = [sum(int(n) for n, _ in schedule[:i + 1]) for i in range(len(schedule))]
        fig = Figure(figsize=(5 * len(rules), 6))
        fig.subplots_adjust(left=0.14 / len(rules), right=0.98, bottom=0.09, top=0.9, wspace=0.22, hspace=0.12)
        axes = fig.subplots(2, len(rules), squeeze=False, sharex=True)
        for j, rule in enumerate(rules):
            for name in dict.fromkeys(_name(tuple(r[:3])) for r in trace if r[4] == rule):
                mine = [r for r in trace if r[4] == rule and _name(tuple(r[:3])) == name]
                axes[0, j].plot([r[5] for r in mine], [r[6] for r in mine], lw=1, label=f"{name} ({mine[0][3]})")
                axes[1, j].plot([r[5] for r in mine], [r[7] for r in mine], lw=1)
            for ax in axes[:, j]:
                for end in ends[:-1]:
                    ax.axvline(end, color="0.6", lw=0.6)
            for (a, b), (_, share) in zip(zip([0, *ends[:-1]], ends), schedule):
                axes[1, j].annotate(f"OOD {100 * share:g} %", ((a + b) / 2, 0.97), xycoords=("data", "axes fraction"),
                                    ha="center", va="top", fontsize=7, color="0.4")
            axes[0, j].axhline(0.1, color="k", ls="--", lw=0.8, label="q = 0.1")
            axes[0, j].set(title=f"{rule}, q = 0.1: one stream", ylabel="FDP so far")
            axes[1, j].set(xlabel="images seen", ylabel="rejections so far", ylim=(0, None))
            axes[0, j].legend(fontsize=7)
        fig.suptitle("Online rules: false discovery proportion over one stream per group")
        save(fig, "online.png")
    return paths
