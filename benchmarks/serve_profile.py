"""Where the scoring service's time goes: the service of a saved model runs in this process with
its scoring function timed (batch sizes, seconds busy), while a second process sends the load of
benchmarks/serve_load.py; prints how full the batches were and the network's images/s inside the
service, beside its images/s alone at the same batch size.

    python benchmarks/serve_profile.py runs/deploy/layers-mnist0 --requests 600 --clients 8 --threads 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import uvicorn

from oodscope.data import load
from oodscope.detectors import load as load_model
from oodscope.serve.app import create_app
from oodscope.serve.settings import ServeSettings

CLIENT = """
import sys; sys.path.insert(0, {here!r})
import numpy as np, serve_load as s
from oodscope.data import load
test = load('mnist', 'test').images[:, 0]
rng = np.random.default_rng(0)
bodies = [s._body([s._png(test[j]) for j in rng.choice(len(test), {images}, replace=False)]) for _ in range(100)]
print(s.load_test({port}, bodies, {requests}, {clients}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--port", type=int, default=8765)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    det = load_model(a.model)
    log: list[tuple[int, float]] = []
    score = det.score

    def timed(x: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        out = score(x)
        log.append((len(x), time.perf_counter() - t))
        return out

    det.score = timed  # type: ignore[method-assign]
    server = uvicorn.Server(uvicorn.Config(create_app(det, ServeSettings(), weights_sha256="profile"),
                                           host="127.0.0.1", port=a.port, log_level="warning"))
    thread = threading.Thread(target=server.run)
    thread.start()
    while not server.started:
        time.sleep(0.1)
    code = CLIENT.format(here=str(Path(__file__).resolve().parent), images=a.images, port=a.port,
                         requests=a.requests, clients=a.clients)
    subprocess.run([sys.executable, "-c", code], check=True)
    server.should_exit = True
    thread.join()

    sizes = np.array([n for n, _ in log])
    busy = sum(s for _, s in log)
    batch = int(np.median(sizes))
    x = load("mnist", "test").images[: batch * 20]
    score(x[:batch])
    t = time.perf_counter()
    for i in range(0, len(x), batch):
        score(x[i: i + batch])
    alone = len(x) / (time.perf_counter() - t)
    print(f"batches {len(sizes)}, median size {batch} (min {sizes.min()}, max {sizes.max()}); network busy {busy:.1f} s; "
          f"inside the service {sizes.sum() / busy:.0f} img/s, alone at batch {batch} {alone:.0f} img/s")


if __name__ == "__main__":
    main()
