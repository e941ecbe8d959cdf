"""The scoring service's API key, request log, conformal p-values and decision rules: a real
uvicorn server in a thread of the test process, real HTTP requests (starlette's TestClient needs
the httpx2 package, which the serve extra does not install)."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy.stats import false_discovery_control

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("multipart")

from oodscope.cli import cli  # noqa: E402
from oodscope.data import load as load_data  # noqa: E402
from oodscope.detectors import load  # noqa: E402
from oodscope.errors import InputError  # noqa: E402
from oodscope.metrics.conformal import OnlineFDR, class_p_values, p_values  # noqa: E402
from oodscope.pipeline import fit_with_threshold  # noqa: E402
from oodscope.pipeline.decisions import DecisionRule, rule_from_options  # noqa: E402
from oodscope.serve import ServeSettings, create_app  # noqa: E402
from oodscope.serve.auth import ENV_KEY, bind_check, is_loopback, read_key  # noqa: E402

torch.set_num_threads(1)
KEY = "k3y-for-tests_0123456789"
IN_PROCESS = ServeSettings(workers=0, engine="torch")


def _fit(method: str, root: Path) -> Path:
    train = load_data("digits", "train").subset(range(800))  # 80 held-out images: the calibration set (lord++ at
    # q = 0.5 needs 74 to flag anything at all)
    report = fit_with_threshold(method, train, None, 0.9, preset="smoke", overrides={"epochs": 1, "progress": False})
    return report.detector.save(root / method)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fit("geom", tmp_path_factory.mktemp("serve-decisions"))


@pytest.fixture(scope="module")
def probe() -> np.ndarray:
    """8 test digits and 8 noise images, uint8 (16, 1, 8, 8)."""
    noise = np.random.default_rng(0).integers(0, 256, (8, 1, 8, 8), dtype=np.uint8)
    return np.concatenate([load_data("digits", "test").images[:8], noise])


def _calibration(model: Path) -> np.ndarray:
    return np.asarray(json.loads((model / "config.json").read_text())["threshold_rule"]["held_out_scores"])


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port in a thread; its URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)


def call(url: str, path: str, body: Any = None, key: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """GET ``path`` (or POST ``body`` as JSON): status, headers, decoded JSON (or text)."""
    h = dict(headers or {})
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(url + path, data=data, headers=h, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, got, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, got, raw = e.code, dict(e.headers), e.read()
    try:
        return status, got, json.loads(raw)
    except json.JSONDecodeError:
        return status, got, raw.decode()


def score(url: str, images: np.ndarray, key: str | None = None) -> dict[str, Any]:
    status, _, out = call(url, "/score", {"images": images.tolist()}, key)
    assert status == 200, out
    return out


def column(out: dict[str, Any], name: str) -> np.ndarray:
    return np.array([r[name] for r in out["results"]])


def flags(out: dict[str, Any]) -> np.ndarray:
    return column(out, "verdict") == "ood"


# -- authentication -------------------------------------------------------------------------------
def test_bind_check_and_key_reading(tmp_path: Path) -> None:
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.4", "10.0.0.1", "example.com", "128.0.0.1", ""):
        assert not is_loopback(host), host
    with pytest.raises(InputError, match="--no-auth") as e:
        bind_check("0.0.0.0", 8000, None, no_auth=False)
    assert "API key" in str(e.value) and "\n" not in str(e.value)
    level, line = bind_check("0.0.0.0", 8000, None, no_auth=True)
    assert level == logging.WARNING and "NO AUTHENTICATION" in line and "anyone who can reach 0.0.0.0:8000" in line
    level, line = bind_check("127.0.0.1", 8000, None, no_auth=False)
    assert level == logging.WARNING and "no authentication" in line and "127.0.0.1:8000" in line
    level, line = bind_check("0.0.0.0", 9, KEY, no_auth=False)
    assert level == logging.INFO and "authentication on" in line and KEY not in line
    with pytest.raises(InputError, match="contradicts"):
        bind_check("0.0.0.0", 8000, KEY, no_auth=True)

    key_file = tmp_path / "key"
    key_file.write_text(f"  {KEY}\n")
    assert read_key(key_file, {}) == KEY
    assert read_key(key_file, {ENV_KEY: "other"}) == KEY  # the file, when given, wins
    assert read_key(None, {ENV_KEY: f"{KEY}\n"}) == KEY
    assert read_key(None, {}) is None
    key_file.write_text(" \n")
    with pytest.raises(InputError, match="empty"):
        read_key(key_file, {})
    with pytest.raises(InputError, match="cannot read"):
        read_key(tmp_path / "missing", {})
    with pytest.raises(InputError, match=ENV_KEY):
        read_key(None, {ENV_KEY: ""})
    key_file.write_text("two words")
    with pytest.raises(InputError, match="visible ASCII") as e:
        read_key(key_file, {})
    assert "two words" not in str(e.value)


def test_api_key_guards_every_endpoint_but_health(model: Path, probe: np.ndarray) -> None:
    with serving(create_app(model, IN_PROCESS, api_key=KEY)) as url:
        assert call(url, "/health")[0] == 200
        body = {"images": probe[:2].tolist()}
        for path, payload in (("/score", body), ("/model", None), ("/docs", None), ("/openapi.json", None)):
            for headers in ({}, {"Authorization": f"Bearer {KEY}x"}, {"Authorization": f"Basic {KEY}"},
                            {"Authorization": KEY}):
                status, got, out = call(url, path, payload, headers=headers)
                assert status == 401, (path, headers, status)
                assert got["www-authenticate"].startswith("Bearer"), got
                assert KEY not in json.dumps(out)
            status, _, out = call(url, path, payload, key=KEY)
            assert status == 200, (path, out)
        assert call(url, "/score", body, key=KEY.lower() if KEY.lower() != KEY else KEY + "1")[0] == 401


def _invoke(args: list[str], env: dict[str, str | None] | None = None) -> Any:
    return CliRunner().invoke(cli, ["serve", *args], env={ENV_KEY: None, **(env or {})}, catch_exceptions=False)


def _one_line_error(result: Any, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_cli_binds_open_only_when_told_and_says_so_first(model: Path, probe: np.ndarray, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: runs.append({"app": app, **kw}))
    base = [str(model), "--workers", "0", "--engine", "torch", "--threads", "1"]

    _one_line_error(_invoke([*base, "--host", "0.0.0.0"]), "not a loopback address", "API key", "--no-auth")
    assert not runs  # nothing served

    r = _invoke([*base, "--host", "0.0.0.0", "--no-auth", "--port", "8123"])
    assert r.exit_code == 0, r.output
    first = r.stderr.splitlines()[0]
    assert "NO AUTHENTICATION" in first and "open to anyone who can reach 0.0.0.0:8123" in first
    assert runs[-1]["host"] == "0.0.0.0" and runs[-1]["port"] == 8123

    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n")
    for args, env in (([*base, "--host", "0.0.0.0", "--api-key-file", str(key_file)], {}),
                      ([*base, "--host", "0.0.0.0"], {ENV_KEY: KEY})):
        r = _invoke(args, env)
        assert r.exit_code == 0, r.output
        assert "authentication on" in r.stderr.splitlines()[0] and KEY not in r.output
        with serving(runs[-1]["app"]) as url:
            assert call(url, "/model")[0] == 401 and call(url, "/model", key=KEY)[0] == 200

    key_file.write_text("\n")
    _one_line_error(_invoke([*base, "--api-key-file", str(key_file)]), "api-key", "empty")
    _one_line_error(_invoke([*base, "--api-key-file", str(tmp_path / "none")]), "cannot read the API key")
    _one_line_error(_invoke([*base, "--no-auth"], {ENV_KEY: KEY}), "contradicts")
    _one_line_error(_invoke([*base, "--alpha", "0.3", "--fdr-state", str(tmp_path / "s.json")]), "online rule")
    _one_line_error(_invoke([*base, "--alpha", "0.001"]), "999 calibration images")
    _one_line_error(_invoke([*base, "--alpha", "0.3", "--fdr", "0.3"]), "not both")


def test_requests_are_logged_without_image_content(model: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="oodscope.serve")
    marks = [0.123456789, 0.987654321, 0.555555501]
    images = np.full((2, 8, 8), marks[0])
    images[0, 1, 2], images[1, 3, 4] = marks[1], marks[2]
    with serving(create_app(model, IN_PROCESS, api_key=KEY)) as url:
        score(url, images, KEY)
        bad = images * 300  # out of range: refused
        assert call(url, "/score", {"images": bad.tolist()}, KEY)[0] == 422
        assert call(url, "/score", {"images": images.tolist()})[0] == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "oodscope.serve"]
    ok = [x for x in lines if x.startswith("POST /score 200")]
    assert len(ok) == 1 and "images=2" in ok[0] and " ms " in ok[0] and "client=127.0.0.1:" in ok[0], lines
    assert any(x.startswith("POST /score 422 ") and "0..255" in x for x in lines), lines
    assert any(x.startswith("POST /score 401") and "missing API key" in x for x in lines), lines
    text = "\n".join(lines)
    for v in [*marks, *(bad.ravel()[:3])]:
        assert f"{v:.6f}"[:7] not in text and str(v) not in text
    assert KEY not in text


# -- p-values and decisions -------------------------------------------------------------------------
def test_p_values_and_the_alpha_rule(model: Path, probe: np.ndarray) -> None:
    cal = _calibration(model)
    with serving(create_app(model, IN_PROCESS)) as url:  # the model's own rule: its threshold
        out = score(url, probe)
        status, _, info = call(url, "/model")
    s, p = column(out, "score"), column(out, "p_value")
    np.testing.assert_allclose(s, load(model).score(probe), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(p, p_values(cal, s))
    assert out["decision"]["rule"] == "threshold"
    np.testing.assert_array_equal(flags(out), s > out["threshold"])
    assert info["calibration"] == {"n": cal.size, "source": "held-out training images"}
    assert "held_out_scores" not in json.dumps(info) and "online" not in info

    alpha = float(np.unique(p)[len(np.unique(p)) // 2])  # a p-value itself: p == alpha is flagged
    with serving(create_app(model, IN_PROCESS, rule=rule_from_options(alpha=alpha))) as url:
        out = score(url, probe)
        info = call(url, "/model")[2]
    p = column(out, "p_value")
    np.testing.assert_array_equal(flags(out), p <= alpha)
    assert 0 < flags(out).sum() < len(p) and (p == alpha).any()
    assert out["decision"] == info["decision"] == DecisionRule("alpha", alpha).record()
    assert f"at most {alpha:g}" in info["decision"]["guarantee"]


def test_fdr_is_benjamini_hochberg_per_request(model: Path, probe: np.ndarray) -> None:
    p_all = p_values(_calibration(model), load(model).score(probe))
    ordered = np.sort(p_all)
    q = min(0.99, 1.001 * float(np.min(ordered * len(ordered) / np.arange(1, len(ordered) + 1))))  # flags some
    with serving(create_app(model, IN_PROCESS, rule=rule_from_options(fdr=q))) as url:
        outs = [score(url, probe), score(url, probe[[0, 9, 1, 10, 2]]), score(url, probe[:4])]
    assert all(o["decision"]["rule"] == "bh" and o["decision"]["level"] == q for o in outs)
    for out in outs:
        p = column(out, "p_value")
        np.testing.assert_array_equal(flags(out), false_discovery_control(p, method="bh") <= q)
    assert 0 < flags(outs[0]).sum() < len(probe)


def _stream_state(t: int) -> dict[str, Any]:
    """A lord++ state that has rejected its last ``t`` images, so that it has wealth to spend."""
    return OnlineFDR.from_state({"rule": "lord++", "q": 0.5, "w0": 0.25, "t": t, "rejections": list(range(1, t + 1))}).state()


def test_online_rule_state_is_saved_and_resumed(model: Path, probe: np.ndarray, tmp_path: Path) -> None:
    path, start = tmp_path / "fdr-state.json", _stream_state(20)
    path.write_text(json.dumps(start))
    rule = rule_from_options(fdr=0.5, fdr_rule="lord++")
    order = np.random.default_rng(3).permutation(len(probe))
    requests = [probe[order[:5]], probe[order[5:9]], probe[order[9:]]]
    outs = []
    with serving(create_app(model, IN_PROCESS, rule=rule, fdr_state=path)) as url:
        outs += [score(url, requests[0]), score(url, requests[1])]
    assert json.loads(path.read_text())["t"] == 29
    with serving(create_app(model, IN_PROCESS, rule=rule, fdr_state=path)) as url:  # a restarted service
        outs.append(score(url, requests[2]))
        info = call(url, "/model")[2]
    p = np.concatenate([column(o, "p_value") for o in outs])
    expected = OnlineFDR.from_state(start)
    want = expected.test_many(p)
    np.testing.assert_array_equal(np.concatenate([flags(o) for o in outs]), want)
    assert want.any() and not want.all()
    assert not np.array_equal(OnlineFDR(0.5, "lord++").test_many(p), want)  # the saved state made a difference
    assert json.loads(path.read_text()) == expected.state()
    assert [o["online"]["first_t"] for o in outs] == [21, 26, 30] and outs[-1]["online"]["t"] == 36
    assert info["online"]["t"] == 36 and info["online"]["rejections"] == len(expected.rejections)
    assert info["online"]["state_file"] == str(path) and "for independent p-values" in info["decision"]["guarantee"]

    with pytest.raises(InputError, match="lord\\+\\+ at q=0.5, not lond"):
        create_app(model, IN_PROCESS, rule=rule_from_options(fdr=0.5, fdr_rule="lond"), fdr_state=path)
    with pytest.raises(InputError, match="online rule"):
        create_app(model, IN_PROCESS, rule=rule_from_options(fdr=0.5), fdr_state=path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="fdr-state"):
        create_app(model, IN_PROCESS, rule=rule, fdr_state=path)

    fresh = tmp_path / "new-state.json"
    with serving(create_app(model, IN_PROCESS, rule=rule, fdr_state=fresh)) as url:
        score(url, probe[:3])
    assert json.loads(fresh.read_text())["t"] == 3
    with serving(create_app(model, IN_PROCESS, rule=rule)) as url:
        assert "in memory only" in call(url, "/model")[2]["online"]["state"]


def test_concurrent_requests_keep_the_online_rule_whole(model: Path, probe: np.ndarray, tmp_path: Path) -> None:
    start, path = _stream_state(20), tmp_path / "state.json"
    path.write_text(json.dumps(start))
    app = create_app(model, IN_PROCESS, rule=DecisionRule("lord++", 0.5), fdr_state=path)
    batches = [probe[i: i + 1 + i % 3] for i in range(12)]
    with serving(app) as url, ThreadPoolExecutor(6) as pool:
        outs = list(pool.map(lambda x: score(url, x), batches))
    outs.sort(key=lambda o: o["online"]["first_t"])
    firsts = [o["online"]["first_t"] for o in outs]
    sizes = [len(o["results"]) for o in outs]
    assert firsts == list(21 + np.cumsum([0, *sizes[:-1]]))  # each request decided whole, one after another
    p = np.concatenate([column(o, "p_value") for o in outs])
    expected = OnlineFDR.from_state(start)
    np.testing.assert_array_equal(np.concatenate([flags(o) for o in outs]), expected.test_many(p))
    assert json.loads(path.read_text()) == expected.state()


def test_class_conditional_p_values_in_process_only(model: Path, probe: np.ndarray,
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    msp = _fit("msp", tmp_path_factory.mktemp("msp"))
    rule = rule_from_options(alpha=0.5, class_conditional=True)
    with serving(create_app(msp, IN_PROCESS, rule=rule)) as url:
        out = score(url, probe)
        info = call(url, "/model")[2]
    rec = json.loads((msp / "config.json").read_text())["threshold_rule"]
    s, k = column(out, "score"), column(out, "predicted_class")
    np.testing.assert_array_equal(k, np.argmax(load(msp).outputs(probe)["logits"], axis=1))
    np.testing.assert_array_equal(column(out, "p_value"), class_p_values(rec["held_out_scores"], rec["held_out_classes"], s, k))
    np.testing.assert_array_equal(flags(out), column(out, "p_value") <= 0.5)
    assert sum(info["calibration"]["per_class"].values()) == len(rec["held_out_scores"])
    with pytest.raises(InputError, match="--workers 0"):
        create_app(msp, ServeSettings(workers=2), rule=rule)
    with pytest.raises(InputError, match="classifier"):
        create_app(model, IN_PROCESS, rule=rule)  # geom reads no classifier
