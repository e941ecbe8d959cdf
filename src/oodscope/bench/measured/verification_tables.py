"""Tables of the ``verification`` suite (:mod:`oodscope.bench.measured.verification`): certified accuracy per
model, bound method and ε; rotation certificates per ±θ; the soundness checks; neuron coverage.
Values are means over seeds (± std when there are several). Certificate and rotation rows measured
before the bounds included the float32 rounding (no ``"bounds": "float32"`` in their variant) are
shown apart, their model marked "(float64 bounds)". No torch."""

from __future__ import annotations

from collections import defaultdict
from statistics import fmean
from typing import Any

from oodscope.bench.measured.robustness_tables import MISSING, cell_text, eps_text
from oodscope.results.tables import Table


MODEL_ORDER = ("standard", "adversarial", "certified")


def _order(model: str) -> tuple[int, str]:
    """Models in the suite's order (standard, adversarial, certified), others after by name; a
    model's rows of float64 bounds after its own."""
    base = model.split(" ")[0]
    return (MODEL_ORDER.index(base) if base in MODEL_ORDER else len(MODEL_ORDER), model)


def _model(row: dict[str, Any]) -> str:
    """The row's model, marked "(float64 bounds)" for a certificate measured before the bounds
    included the float32 rounding (no ``bounds`` in its variant)."""
    old = row.get("variant", {}).get("bounds") != "float32"
    return row["method"] + (" (float64 bounds)" if old else "")


def _kind(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("variant", {}).get("kind") == kind]


def certified_table(rows: list[dict[str, Any]]) -> Table | None:
    """Rows: model and bound method (and PGD's accuracy, an upper bound); columns: ε."""
    cert = _kind(rows, "certify")
    if not cert:
        return None
    eps = sorted({float(r["variant"]["eps"]) for r in cert})
    values: dict[tuple[str, str], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    seconds: dict[tuple[str, str], list[float]] = defaultdict(list)
    images: dict[tuple[str, str], set[int]] = defaultdict(set)
    for r in cert:
        v, m = r["variant"], r["metrics"]
        key = (_model(r), v["method"])
        values[key][float(v["eps"])].append(m["certified"])
        seconds[key].append(m["seconds_per_certificate"])
        images[key].add(int(m["n_images"]))
        if v["method"] == "interval":  # the attack ran on the interval rows' (larger) image sets
            values[(_model(r), f"PGD-{v['pgd_steps']} × {v['pgd_restarts']} (upper bound)")][float(v["eps"])].append(m["pgd_accuracy"])
    table = Table(["model", "bounds", *[f"ε = {eps_text(e)}" for e in eps], "images", "s / certificate"],
                  align=["left", "left", *["right"] * (len(eps) + 2)],
                  caption="Certified accuracy (%) on the L∞ ball (pixels in [0, 1]): the share of test images whose true "
                          "class is proven to stay the prediction; PGD's accuracy bounds it from above")
    for (model, method), by_eps in sorted(values.items(), key=lambda kv: (_order(kv[0][0]), kv[0][1].startswith("PGD"), kv[0][1])):
        secs = seconds.get((model, method))
        n = images.get((model, method))
        table.rows.append([model, method, *[cell_text(by_eps.get(e, [])) for e in eps],
                           "/".join(map(str, sorted(n))) if n else "",
                           f"{fmean(secs):.3g}" if secs else ""])
    return table


def rotation_table(rows: list[dict[str, Any]]) -> Table | None:
    """Rows: model; columns: ±θ; cells: certified (%) and seconds per image."""
    rot = _kind(rows, "rotation")
    if not rot:
        return None
    thetas = sorted({float(r["variant"]["theta"]) for r in rot})
    values: dict[str, dict[float, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rot:
        values[_model(r)][float(r["variant"]["theta"])].append(r["metrics"])
    splits = sorted({f"{r['variant']['splits']}" for r in rot}, key=int)
    method = "/".join(sorted({r["variant"]["method"] for r in rot}))
    table = Table(["model", *[f"±{eps_text(t)}°" for t in thetas], "images", *[f"s / image ±{eps_text(t)}°" for t in thetas]],
                  caption=f"Rotation certificates: share (%) of test images whose class is proven constant for every angle "
                          f"in ±θ (bilinear interpolation; {'/'.join(splits)} angle splits, {method} per split, intervals first)")
    for model, by_theta in sorted(values.items(), key=lambda kv: _order(kv[0])):
        n = sorted({int(m["n_images"]) for ms in by_theta.values() for m in ms})
        table.rows.append([model, *[cell_text([m["certified"] for m in by_theta.get(t, [])]) for t in thetas],
                           "/".join(map(str, n)),
                           *[f"{fmean(m['seconds_per_image'] for m in by_theta[t]):.3g}" if t in by_theta else MISSING
                             for t in thetas]])
    return table


def soundness_table(rows: list[dict[str, Any]]) -> Table | None:
    """Per model: certified images attacked and flipped, DeepPoly certificates lost to intervals on
    the same images, rotations sampled on certified images and flipped (every count must be 0)."""
    checked = _kind(rows, "certify") + _kind(rows, "rotation")
    if not checked:
        return None
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for r in checked:
        m, t = r["metrics"], totals[_model(r)]
        if r["variant"]["kind"] == "certify":
            t[0] += int(m["n_certified"])
            t[1] += int(m["pgd_flips"])
            t[2] += int(m.get("lost_to_interval", 0))
        else:
            t[3] += int(m["n_certified"]) * int(r["variant"]["sampled_angles"])
            t[4] += int(m["sampled_flips"])
    table = Table(["model", "certified balls attacked", "changed by PGD", "DeepPoly lost vs intervals",
                   "certified rotations sampled", "changed by a sampled angle"],
                  caption="Soundness checks over every certificate of the suite (each count of changes must be 0)")
    for model, t in sorted(totals.items(), key=lambda kv: _order(kv[0])):
        table.rows.append([model, *map(str, t)])
    return table


def _definition(v: dict[str, Any]) -> str:
    """A coverage definition in words."""
    level = f"> {float(v['threshold']):g}" + (" of scaled range" if v["scale"] else "")
    return f"{'fired (> 0)' if level == '> 0' else level}, per {v['unit']}"


def coverage_table(rows: list[dict[str, Any]]) -> Table | None:
    """Rows: model, coverage definition and input set; columns: overall and per-layer neuron coverage (%)."""
    cov = _kind(rows, "coverage")
    if not cov:
        return None
    layers: list[str] = []
    for r in cov:
        layers += [k.split(":", 1)[1] for k in r["metrics"] if k.startswith("coverage:") and k.split(":", 1)[1] not in layers]
    values: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in cov:
        v = r["variant"]
        name = v["inputs"] + (f" (PGD ε = {eps_text(v['eps'])})" if v["inputs"] == "adversarial" else "")
        values[(r["method"], _definition(v), name)].append(r["metrics"])
    table = Table(["model", "neuron active when", "inputs", "images", "overall", *layers],
                  align=["left", "left", "left", *["right"] * (len(layers) + 2)],
                  caption="Neuron coverage (%, DeepXplore): share of neurons activated by at least one input (a channel "
                          "unit: the channel's mean over positions; the range: the layer's min-max on that input)")
    for (model, definition, inputs), ms in sorted(values.items(), key=lambda kv: (_order(kv[0][0]), kv[0][1])):
        table.rows.append([model, definition, inputs, str(ms[0]["n_images"]), cell_text([m["coverage"] for m in ms]),
                           *[cell_text([m[f"coverage:{layer}"] for m in ms if f"coverage:{layer}" in m]) for layer in layers]])
    return table


def tables(rows: list[dict[str, Any]]) -> list[Table]:
    """The suite's tables that ``rows`` fill."""
    return [t for t in (certified_table(rows), rotation_table(rows), soundness_table(rows), coverage_table(rows)) if t is not None]
