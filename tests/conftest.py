import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# trained shared networks of the tests go to a fresh directory, never to ~/.cache
os.environ["OODSCOPE_CACHE"] = tempfile.mkdtemp(prefix="oodscope-test-cache-")


@pytest.fixture(scope="session")
def data_root() -> Path:
    env = os.environ.get("OODSCOPE_DATA")
    for cand in ([Path(env)] if env else []) + [SHARED]:
        if (cand / "mnist" / "train-images-idx3-ubyte.gz").is_file():
            return cand
    pytest.skip("MNIST original files not found (set OODSCOPE_DATA to ../shared/data)")


def on_ci() -> bool:
    """Whether the tests run under CI (the CI variable is set)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def need(detector_class) -> None:
    """Skip a test of a detector whose optional package is missing (``pip install 'oodscope[peers]'``);
    under CI, which installs every extra it tests (scripts/test.sh), fail instead."""
    reason = detector_class.unavailable()
    if reason:
        if on_ci():
            pytest.fail(f"CI must install every extra it tests: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary; skipped when absent outside CI, a failure when absent under CI."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if path is None:
        if on_ci():
            pytest.fail("CI is set but chromium is not installed (.ci/run installs the Debian package)")
        pytest.skip("/usr/bin/chromium not installed (apt-get install chromium); CI is not set")
    return path


def run_chromium(binary: str, profile: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with ``args`` (a fresh profile, no network chatter); its completed process."""
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           "--hide-scrollbars", "--force-device-scale-factor=1", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
