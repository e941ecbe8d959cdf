"""``table.md`` of the ``robustness`` suite: robust accuracy per model, attack and ε; transfer
success between independently trained classifiers; detectors' AUROC under attack. Values are
means over seeds (± std when there are several)."""

from __future__ import annotations

from collections import defaultdict
from statistics import fmean, pstdev
from typing import Any

from oodscope.results.tables import Table

MISSING = "–"


def cell_text(values: list[float]) -> str:
    if not values:
        return MISSING
    if len(values) > 1:
        return f"{fmean(values):.2f} ± {pstdev(values):.2f}"
    return f"{values[0]:.2f}"


def eps_text(v: float) -> str:
    return f"{v:g}"


def accuracy_table(rows: list[dict[str, Any]]) -> Table | None:
    """Rows: model and attack; columns: ε."""
    acc = [r for r in rows if r["method"] != "transfer" and "accuracy" in r["metrics"]]
    if not acc:
        return None
    eps = sorted({float(r["variant"]["eps"]) for r in acc})
    values: dict[tuple[str, str], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    seconds: dict[str, list[float]] = defaultdict(list)
    for r in acc:
        v = r["variant"]
        name = "clean" if v["attack"] == "none" else f"{v['attack'].upper()}" + (
            "" if v["attack"] == "fgsm" else f"-{v['steps']}" + (f" × {v['restarts']} restarts" if v["restarts"] > 1 else ""))
        values[(r["method"], name)][float(v["eps"])].append(r["metrics"]["accuracy"])
        if r.get("fit_seconds") is not None:
            seconds[r["method"]].append(float(r["fit_seconds"]))
    table = Table(["model", "attack", *[f"ε = {eps_text(e)}" for e in eps], "training s"],
                  align=["left", "left", *["right"] * (len(eps) + 1)],
                  caption="Accuracy (%) on the in-distribution test images under attack (L∞, pixels in [0, 1])")
    for (model, attack), by_eps in values.items():
        secs = seconds.get(model)
        table.rows.append([model, attack, *[cell_text(by_eps.get(e, [])) for e in eps],
                           f"{fmean(secs):.0f}" if secs else MISSING])
    return table


def targeted_table(rows: list[dict[str, Any]]) -> Table | None:
    """Rows: model; the targeted L1 attack's success and the size of its successful perturbations."""
    tg = [r for r in rows if "success" in r["metrics"]]
    if not tg:
        return None
    by: dict[str, list[dict[str, float]]] = defaultdict(list)
    for r in tg:
        by[r["method"]].append(r["metrics"])
    table = Table(["model", "success %", "‖δ‖₁", "pixels changed %", "‖δ‖∞"],
                  caption="The notes' targeted attack min E(x + δ, k_adv) + λ‖δ‖₁ (target: the next class), "
                          "λ searched per image; sizes of the successful perturbations")
    for model, ms in by.items():
        table.rows.append([model, *[cell_text([m[k] for m in ms if k in m])
                                    for k in ("success", "mean_l1", "changed_pixels", "mean_linf")]])
    return table


def transfer_table(rows: list[dict[str, Any]]) -> Table | None:
    """Rows: source -> target; columns: ε; cells: transfer success (white-box success)."""
    tr = [r for r in rows if r["method"] == "transfer"]
    if not tr:
        return None
    eps = sorted({float(r["variant"]["eps"]) for r in tr})
    values: dict[str, dict[float, tuple[list[float], list[float]]]] = defaultdict(lambda: defaultdict(lambda: ([], [])))
    for r in tr:
        v = r["variant"]
        key = f"{v['source']} → {v['target']} (PGD-{v['steps']})"
        values[key][float(v["eps"])][0].append(r["metrics"]["transfer_success"])
        values[key][float(v["eps"])][1].append(r["metrics"]["source_success"])
    table = Table(["crafted on → evaluated on", *[f"ε = {eps_text(e)}" for e in eps]],
                  caption="Transfer success (%) of adversarial examples between two independently trained classifiers "
                          "(in brackets: white-box success on the source); over images both classify correctly")
    for key, by_eps in values.items():
        table.rows.append([key, *[f"{cell_text(by_eps[e][0])} ({cell_text(by_eps[e][1])})" if e in by_eps else MISSING for e in eps]])
    return table


def detector_table(rows: list[dict[str, Any]]) -> Table | None:
    """Rows: detector on model; columns: ε of the PGD attack on the OOD images (0 = clean)."""
    det = [r for r in rows if "auroc" in r["metrics"]]
    if not det:
        return None
    eps = sorted({float(r["variant"]["eps"]) for r in det})
    values: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in det:
        v = r["variant"]
        values[f"{r['method']} ({v['model']} classifier)"][float(v["eps"])].append(r["metrics"]["auroc"])
    steps = sorted({r["variant"]["steps"] for r in det if r["variant"]["steps"]})
    table = Table(["detector", *[("clean" if e == 0 else f"ε = {eps_text(e)}") for e in eps]],
                  caption=f"AUROC (%) when the OOD test images are perturbed by PGD-{'/'.join(map(str, steps))} to lower "
                          "the detector's score (look in-distribution)")
    for key, by_eps in values.items():
        table.rows.append([key, *[cell_text(by_eps.get(e, [])) for e in eps]])
    return table


def tables(rows: list[dict[str, Any]]) -> list[Table]:
    """The suite's tables that ``rows`` fill: accuracy, targeted attack, transfer, detectors."""
    return [t for t in (accuracy_table(rows), targeted_table(rows), transfer_table(rows), detector_table(rows)) if t is not None]
