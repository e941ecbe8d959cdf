"""Tests of ``oodscope bench --executor ray`` on a local Ray: the same rows as the local runner,
resume after the driver is killed, a cell run again after its worker is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from oodscope.bench import BenchConfig, RunOptions, run_bench  # noqa: E402
from oodscope.bench.ray_executor import gpus_per_cell  # noqa: E402
from oodscope.errors import InputError  # noqa: E402
from oodscope.protocols import OneClass  # noqa: E402
from oodscope.results import ResultsLog, row_key  # noqa: E402

EXE = str(Path(sys.executable).with_name("oodscope"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}


def grid(out: Path, executor: str) -> BenchConfig:
    """digits (bundled), three classes, geom and layers (which share GEOM's f), smoke preset."""
    return BenchConfig(out=out, protocol=OneClass("digits", (0, 1, 2), "digits", (4,)), methods=["geom", "layers"],
                       preset="smoke", overrides={"batch_size": 64},
                       run=RunOptions(progress=False, disk_cache=False, executor=executor))


def cli_args(out: Path, classes: str, *extra: str) -> list[str]:
    return [EXE, "bench", "--dataset", "digits", "--oe", "digits", "--classes", classes, "--n-oe", "4",
            "--preset", "smoke", "--out", str(out), "--no-progress", "--no-disk-cache", "--executor", "ray",
            "--set", "progress=false", "--set", "batch_size=64", *extra]


def counts(out: Path) -> Counter:
    return Counter(row_key(r) for r in ResultsLog(out / "results.jsonl").rows())


def ray_processes(name: str) -> list[int]:
    """PIDs of Ray workers whose title is ``ray::<name>`` (a worker running that task)."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if pid.isdigit() and cmd.startswith(f"ray::{name}".encode()):
            found.append(int(pid))
    return found


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the in-process tests (the executor joins a Ray already started and leaves
    it running); the command-line tests start their own."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_gives_the_rows_of_the_local_runner(tmp_path: Path, local_ray) -> None:
    local = run_bench(grid(tmp_path / "local", "local"))
    logged: list[str] = []
    remote = run_bench(grid(tmp_path / "ray", "ray"), log=logged.append)
    auroc = lambda rows: {row_key(r): r["metrics"]["auroc"] for r in rows}  # noqa: E731
    assert len(local) == 6 and auroc(remote) == auroc(local)
    assert set(counts(tmp_path / "ray").values()) == {1} and len(list((tmp_path / "ray" / "scores").iterdir())) == 6
    # f was trained once per class and handed to both detectors of that class
    ups = [r["upstream"] for r in remote]
    assert len({u["key"] for u in ups}) == 3 and all(u["reused"] for u in ups)
    assert any(line.startswith("ray: ") for line in logged)
    again = run_bench(grid(tmp_path / "ray", "ray"), log=logged.append)  # nothing left: Ray is not even started
    assert auroc(again) == auroc(remote) and logged[-1].startswith("all 6 cells already finished")


def test_an_error_of_a_cell_stops_the_run_as_itself(tmp_path: Path, local_ray) -> None:
    config = grid(tmp_path / "bad", "ray")
    with pytest.raises(InputError, match="widths must name 3"):  # raised in the task that trains f
        run_bench(replace(config, overrides={"widths": [8, 8]}))
    assert ray.is_initialized()  # a Ray the run did not start is left as it was


def test_executor_options_checked() -> None:
    with pytest.raises(InputError, match="unknown executor"):
        RunOptions(executor="dask")
    with pytest.raises(InputError, match="needs --executor ray"):
        RunOptions(address="auto")
    config = grid(Path("unused"), "ray")
    cell = OneClass("digits", (0,), "digits", (4,)).cell("geom", 0, 0, "paper", 4, "all")
    assert gpus_per_cell(config, cell, 2) == 1  # the paper preset trains on CUDA
    with pytest.raises(InputError, match="no GPU"):
        gpus_per_cell(config, cell, 0)
    on_cpu = replace(config, run=replace(config.run, device="cpu"))
    assert gpus_per_cell(on_cpu, cell, 2) == 0
    smoke = OneClass("digits", (0,), "digits", (4,)).cell("geom", 0, 0, "smoke", 4, "all")
    assert gpus_per_cell(config, smoke, 2) == 0
    auto = replace(config, run=replace(config.run, device="auto"))
    assert gpus_per_cell(auto, smoke, 2) == 1 and gpus_per_cell(auto, smoke, 0) == 0


@pytest.mark.slow  # ~45 s; the default run keeps test_worker_killed_cell_run_again and the rows-equal test
def test_driver_killed_then_resumed(tmp_path: Path) -> None:
    """SIGKILL the driver (and its local Ray) after its first rows arrive; rerun: every cell once."""
    out = tmp_path / "run"
    args = cli_args(out, "0-5", "--methods", "geom,layers")
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    results = out / "results.jsonl"
    deadline = time.time() + 180
    try:
        while time.time() < deadline and proc.poll() is None:
            if results.exists() and results.stat().st_size > 0:
                break
            time.sleep(0.05)
        killed = proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = results.read_bytes()
    n_before = before.count(b"\n")
    assert killed and 1 <= n_before < 12
    done = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{12 - n_before} of 12 cells to run" in done.stderr
    assert len(counts(out)) == 12 and set(counts(out).values()) == {1}
    assert results.read_bytes().startswith(before[: before.rfind(b"\n") + 1])


@pytest.mark.slow  # ~30 s; the default run keeps Ray end to end (the rows equal the local runner's)
def test_worker_killed_cell_run_again(tmp_path: Path) -> None:
    """SIGKILL the worker running a cell: the driver runs that cell again, once, and writes it once."""
    out = tmp_path / "run"
    args = cli_args(out, "0-1", "--methods", "layers", "--set", "g_steps=150", "--retries", "1")
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    victims: list[int] = []
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None and not victims:
            victims = ray_processes("fit_cell")
            time.sleep(0.05)
        assert victims, "no Ray worker ran a cell"
        time.sleep(0.5)
        os.kill(victims[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == 0, err[-3000:]
    retried = [line for line in err.splitlines() if "worker died" in line]
    assert len(retried) == 1 and "attempt 2" in retried[0], err[-3000:]
    assert len(counts(out)) == 2 and set(counts(out).values()) == {1}
