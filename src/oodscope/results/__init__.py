"""The results of benchmarks, without torch: schema, keys, labels, the log, score files, records
(``experiment.json``, ``merges.json``) and tables (Markdown, CSV, HTML).

Public API::

    from oodscope.results import ResultsLog, read_results, row_key, row_label, Table
    rows, partial = read_results("runs/mnist/results.jsonl")   # every schema, normalised
    print(render_summary(rows))

Used by :mod:`oodscope.bench` (which writes results), :mod:`oodscope.figures` and
:mod:`oodscope.report` (which read them). It imports only :mod:`oodscope.errors` and
:mod:`oodscope.atomic` of oodscope, so it can sit under every layer; ``import oodscope.results``
loads no torch.
"""

from oodscope.results.log import ResultsLog, first_per_cell, normalize_rows, read_results
from oodscope.results.records import (
    MERGES,
    RECORD,
    RECORD_SCHEMA,
    SECTIONS,
    locate_section,
    read_merges,
    read_object,
    read_record_file,
    read_section,
    recorded_commands,
    section_label,
    update_record,
    write_section,
)
from oodscope.results.schema import (
    CLASS_FIELD,
    CORE_FIELDS,
    SCHEMA_VERSION,
    cell_key,
    config_title,
    field,
    label,
    metric,
    normalize,
    row_key,
    row_label,
)
from oodscope.results.scores import SCORES_DIR, cell_file_id, load_scores, save_scores
from oodscope.results.summary import metrics_table, per_class_table, render_summary
from oodscope.results.tables import MISSING, Table

__all__ = [
    "CLASS_FIELD",
    "CORE_FIELDS",
    "MERGES",
    "MISSING",
    "RECORD",
    "RECORD_SCHEMA",
    "SECTIONS",
    "SCHEMA_VERSION",
    "SCORES_DIR",
    "ResultsLog",
    "Table",
    "cell_file_id",
    "cell_key",
    "config_title",
    "field",
    "first_per_cell",
    "label",
    "load_scores",
    "locate_section",
    "metric",
    "metrics_table",
    "normalize",
    "normalize_rows",
    "per_class_table",
    "read_merges",
    "read_object",
    "read_record_file",
    "read_results",
    "read_section",
    "recorded_commands",
    "render_summary",
    "row_key",
    "row_label",
    "save_scores",
    "section_label",
    "update_record",
    "write_section",
]
