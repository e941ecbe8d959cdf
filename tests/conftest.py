import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    env = os.environ.get("OODSCOPE_DATA")
    for cand in ([Path(env)] if env else []) + [SHARED]:
        if (cand / "mnist" / "train-images-idx3-ubyte.gz").is_file():
            return cand
    pytest.skip("MNIST original files not found (set OODSCOPE_DATA to ../shared/data)")
