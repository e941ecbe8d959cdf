"""Running a suite into a directory: its record (``experiment.json``), the cells (resumable),
``table.md``/``table.csv``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from oodscope.bench.config import BenchConfig
from oodscope.bench.lock import directory_lock
from oodscope.bench.runner import Log, run_bench
from oodscope.bench.paper.files import record_suite
from oodscope.bench.paper.tables import write_tables
from oodscope.bench.paper.suites import SuiteSpec, suite_cells
from oodscope.training import distributed
from oodscope.results import ResultsLog


def run_suite(spec: SuiteSpec, config: BenchConfig, log: Log | None = None) -> list[dict[str, Any]]:
    """Run (or resume) the suite's unfinished cells into ``config.out``, then write its tables.

    ``config`` supplies the output directory, run options, setting overrides and command; its
    protocol and grid are replaced by the suite's. The tables
    are written even when the run stops early (error or interrupt), with the missing entries
    marked. Returns the suite's finished rows.

    Raises:
        InputError, DataError: as :func:`oodscope.bench.run_bench`, or ``DIR`` holds another suite.
    """
    config = replace(config, protocol=spec.protocol(), methods=list(spec.methods), seeds=list(spec.seeds),
                     preset=spec.preset, variants=None)
    if not distributed.is_main():  # a torchrun rank other than 0: compute, write nothing
        return run_bench(config, log, cells=suite_cells(spec))
    directory = config.directory
    directory.mkdir(parents=True, exist_ok=True)
    with directory_lock(directory):  # fail early, before touching the record, if a run is under way
        pass
    record_suite(spec, directory, config.run.data_root, config.run.device, config.overrides, config.command)
    try:
        rows = run_bench(config, log, cells=suite_cells(spec))
    except BaseException:
        try:  # a partial table, without hiding the original error
            write_tables(directory, spec, ResultsLog(directory / "results.jsonl").rows())
        except Exception:
            pass
        raise
    write_tables(directory, spec, ResultsLog(directory / "results.jsonl").rows())
    return rows
