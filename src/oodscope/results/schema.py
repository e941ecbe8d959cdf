"""The results row: one finished benchmark cell, as a line of ``results.jsonl``.

A row of schema 2 holds

* the **core fields** every protocol has: ``schema``, ``protocol``, ``dataset`` (the
  in-distribution data set), ``method``, ``variant`` (settings that tell apart several cells of
  one method, e.g. ``{"taps": ["z4"]}``, or null), ``seed`` and ``preset``;
* ``protocol_fields``: what the protocol adds to identify a cell (one-class: ``id_class``,
  ``n_oe``, ``oe_classes``, ``oe_dataset``; multi-class: ``benchmark``, ``n_oe``, ``oe_dataset``);
* ``metrics``: name -> value (``auroc``, ``aupr_in``, ``aupr_out``, ``fpr95`` in percent, and
  whatever else a protocol measures, e.g. ``accuracy``);
* bookkeeping: ``fit_seconds``, ``score_seconds``, ``upstream`` (the shared network a cell
  used: kind, key, training seconds, whether it was reused), ``n_train``, ``n_validation``,
  ``n_test``, ``n_outliers`` (the known outliers the detector was given: 0 for one that uses none;
  rows written before 0.3 count the cell's outliers whether used or not), ``settings``, ``precision`` (what the scores were computed in:
  "float32" or "bfloat16"; rows written before it existed lack it, and their ``settings``' ``amp``
  says: bfloat16 when on), versions, ``timestamp``, ``scores_file``.

Rows written before schema 2 (no ``schema`` field: one-class only, metrics at the top level,
``taps_variant``, ``shared_base``) are read through :func:`normalize`, so every
``results.jsonl`` ever written reads the same way. This module imports neither torch nor
anything above it.
"""

from __future__ import annotations

import json
from typing import Any

from oodscope.errors import DataError

SCHEMA_VERSION = 2
CORE_FIELDS = ("protocol", "dataset", "method", "variant", "seed", "preset")
CLASS_FIELD = "id_class"  # a protocol field naming the in-distribution class: tables show one row per class
METRIC_NAMES = {"auroc": "AUROC", "aupr_in": "AUPR-in", "aupr_out": "AUPR-out", "fpr95": "FPR95",
                "accuracy": "accuracy", "ece": "ECE", "ece_mean": "ECE (bin means)", "nll": "NLL (nats)",
                "temperature": "T"}

# schema 1 (one-class rows written before protocols were objects)
V1_PROTOCOL = "one-class"
V1_FIELDS = ("id_class", "n_oe", "oe_classes", "oe_dataset")
V1_METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95")


def _v1_upstream(row: dict[str, Any]) -> dict[str, Any] | None:
    """A schema-1 row's shared network, as schema 2 records it. Schema 1 shared only GEOM's f,
    within one (data set, class, seed, preset): that scope is its key."""
    base = row.get("base_fit_seconds")
    if base is None:
        return None
    scope = [row.get("dataset"), row.get("id_class"), row.get("seed"), row.get("preset")]
    return {"kind": "geom-f", "key": "v1:" + json.dumps(scope), "fit_seconds": float(base),
            "reused": bool(row.get("shared_base"))}


def normalize(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` in schema 2 (a new dict for a schema-1 row; a schema-2 row is returned as it is).

    Raises:
        DataError: an unknown schema version, or a row lacking a core field.
    """
    version = row.get("schema", 1)
    if version == SCHEMA_VERSION:
        out = row
    elif version == 1:
        out = {k: v for k, v in row.items() if k not in (*V1_FIELDS, *V1_METRICS, "taps_variant", "shared_base",
                                                          "base_fit_seconds")}
        taps = row.get("taps_variant")
        out.update(
            schema=SCHEMA_VERSION,
            protocol=V1_PROTOCOL,
            variant=None if not taps else {"taps": list(taps)},
            protocol_fields={k: row.get(k) for k in V1_FIELDS},
            metrics={k: row[k] for k in V1_METRICS if k in row},
            upstream=_v1_upstream(row),
        )
    else:
        raise DataError(f"results row of unknown schema version {version!r} (this oodscope reads 1 and {SCHEMA_VERSION})")
    missing = [k for k in (*CORE_FIELDS, "protocol_fields", "metrics") if k not in out]
    if missing:
        raise DataError(f"results row lacks {', '.join(missing)}")
    if not isinstance(out["protocol_fields"], dict) or not isinstance(out["metrics"], dict):
        raise DataError("results row: 'protocol_fields' and 'metrics' must be objects")
    return out


def cell_key(protocol: str, dataset: str, method: str, variant: dict[str, Any] | None, seed: Any, preset: str,
             protocol_fields: dict[str, Any]) -> str:
    """The identity of a cell as one string (JSON of its core and protocol fields)."""
    return json.dumps([protocol, dataset, method, variant or None, seed, preset, protocol_fields],
                      sort_keys=True, separators=(",", ":"))


def row_key(row: dict[str, Any]) -> str:
    """The cell identity of a (normalised) row; equal to ``Cell.key()`` of the cell it finished."""
    return cell_key(row["protocol"], row["dataset"], row["method"], row.get("variant"), row["seed"], row["preset"],
                    row["protocol_fields"])


def variant_text(variant: dict[str, Any] | None) -> str:
    """``z4`` or ``z1+z2+z3+z4`` for a variant of one list setting; ``k=v,k2=v2`` otherwise."""
    if not variant:
        return ""
    if len(variant) == 1:
        (value,) = variant.values()
        if isinstance(value, (list, tuple)):
            return "+".join(map(str, value))
    return ",".join(f"{k}={'+'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                    for k, v in sorted(variant.items()))


def label(method: str, variant: dict[str, Any] | None = None) -> str:
    """The method as tables show it: ``layers``, or ``layers[z4]`` for a variant."""
    text = variant_text(variant)
    return f"{method}[{text}]" if text else str(method)


def row_label(row: dict[str, Any]) -> str:
    """:func:`label` of a normalised row."""
    return label(row["method"], row.get("variant"))


def metric(row: dict[str, Any], name: str) -> float | None:
    """A metric of a normalised row, or None when it is absent or not a finite number."""
    value = row["metrics"].get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)


def field(row: dict[str, Any], name: str, default: Any = None) -> Any:
    """A protocol field of a normalised row."""
    return row["protocol_fields"].get(name, default)


OUTLIER_FIELDS = ("n_oe", "oe_classes", "oe_dataset")


def config_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The protocol fields a summary table groups by: all but the in-distribution class; without a
    class field (multi-class), the outlier budget is not grouped by either, it labels the method
    instead (see :func:`table_label`), so every method of a benchmark shares one table."""
    f = row["protocol_fields"]
    drop = (CLASS_FIELD,) if CLASS_FIELD in f else OUTLIER_FIELDS
    return {k: v for k, v in f.items() if k not in drop}


def config_key(row: dict[str, Any]) -> str:
    """What a summary table groups by: protocol, data set, preset and :func:`config_fields`."""
    return json.dumps([row["protocol"], row["dataset"], row["preset"], config_fields(row)], sort_keys=True)


def config_title(row: dict[str, Any]) -> str:
    """A readable title of :func:`config_key`."""
    f = row["protocol_fields"]
    if CLASS_FIELD in f and set(V1_FIELDS) <= set(f):
        n = f"a ratio gamma_l = {f['n_oe']} of the training set" if isinstance(f["n_oe"], float) else f["n_oe"]
        classes = "the next class (c + 1)" if f["oe_classes"] == "next" else f"{f['oe_classes']} classes"
        return f"{row['dataset']}, outliers: {n} from {classes} of {f['oe_dataset']}, preset {row['preset']}"
    rest = ", ".join(f"{k} {v}" for k, v in config_fields(row).items())
    return f"{row['protocol']} on {row['dataset']}" + (f" ({rest})" if rest else "") + f", preset {row['preset']}"


def table_label(row: dict[str, Any]) -> str:
    """The method as a summary table labels it: :func:`row_label`, plus its outlier budget when the
    table does not group by it (``msp``, ``oe-classifier (16 outliers from emnist-letters)``)."""
    f = row["protocol_fields"]
    n = f.get("n_oe")
    if CLASS_FIELD in f or n in (None, 0):
        return row_label(row)
    return f"{row_label(row)} ({n} outliers from {f.get('oe_dataset')})"
