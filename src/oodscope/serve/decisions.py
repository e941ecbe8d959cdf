"""The decision rule in force over the scoring service's requests (:mod:`oodscope.pipeline.decisions`):
conformal p-values, a per-image or per-request rule, or an online FDR rule decided one request at a
time whose state is saved after every request (``oodscope serve --fdr-state``)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import HTTPException

from oodscope.atomic import write_json_atomic
from oodscope.errors import InputError
from oodscope.metrics.conformal import OnlineFDR
from oodscope.pipeline.decisions import Decider, DecisionRule


def _fail(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def read_state(path: Path, rule: DecisionRule) -> dict[str, Any] | None:
    """The online rule's state saved at ``path`` (None if there is none yet), checked against ``rule``.

    Raises:
        InputError: naming the file: unreadable, not a state, another rule or level, or a folder
        that cannot hold it.
    """
    if not rule.online:
        raise InputError(f"--fdr-state {path}: a state file goes with an online rule (--fdr Q --fdr-rule lond or "
                         f"lord++); the rule in force is {rule.kind}")
    if not path.exists():
        if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
            raise InputError(f"--fdr-state {path}: the folder {path.parent} does not exist or cannot be written to")
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        online = OnlineFDR.from_state(doc if isinstance(doc, dict) else {})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, InputError) as e:
        raise InputError(f"--fdr-state {path}: not a readable online FDR state ({e})") from None
    if (online.rule, online.q) != (rule.kind, rule.level):
        raise InputError(f"--fdr-state {path}: the saved state is for {online.rule} at q={online.q:g}, not "
                         f"{rule.kind} at q={rule.level:g}: give the same rule and level, or another state file")
    return online.state()


class Decisions:
    """The decision rule in force over the service's requests. An online rule decides one request
    at a time (a lock), in the order they reach it, and saves its state to ``state_path`` (if
    given) after each; a request whose state cannot be saved is refused and leaves it as it was."""

    def __init__(self, model: Any, rule: DecisionRule, state_path: Path | None) -> None:
        state = None if state_path is None else read_state(state_path, rule)
        self.decider = Decider(model, rule, state)
        self.rule, self.state_path = rule, state_path
        self.lock = threading.Lock()

    def decide(self, scores: np.ndarray, classes: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None,
                                                                              dict[str, Any] | None]:
        """(p-values, flags, the online rule's position after this request or None). An online rule
        blocks: call it off the event loop."""
        online = self.decider.online
        if online is None:
            p, flags = self.decider.decide(scores, classes)
            return p, flags, None
        with self.lock:
            before = online.state()
            try:
                p, flags = self.decider.decide(scores, classes)
                if self.state_path is not None:
                    write_json_atomic(self.state_path, online.state())
            except BaseException as e:
                self.decider.online = OnlineFDR.from_state(before)
                if isinstance(e, OSError):
                    raise _fail(500, f"cannot save the online FDR state to {self.state_path} ({e.strerror or e}); "
                                     "the request was not decided") from None
                raise
            return p, flags, {"first_t": before["t"] + 1, **self._position()}

    def _position(self) -> dict[str, Any]:
        online = self.decider.online
        assert online is not None
        return {"t": online.t, "rejections": len(online.rejections)}

    def describe(self) -> dict[str, Any]:
        """The rule, its calibration (size and source) and, for an online rule, its position."""
        cal = self.decider.calibration
        out: dict[str, Any] = {"decision": self.rule.record(), "calibration": None if cal is None else cal.summary()}
        if self.decider.online is not None:
            with self.lock:
                position = self._position()
            kept = (f"saved in {self.state_path} after every request" if self.state_path is not None else
                    "in memory only: lost when the service stops (start it with --fdr-state PATH to keep it)")
            out["online"] = {**position, "state_file": None if self.state_path is None else str(self.state_path),
                             "state": kept}
        return out
