"""What a rehearsal records: one :class:`UserRecord` per simulated user, each a list of timed :class:`Step`s,
inside one :class:`RunRecord` that is written as JSON. Times are seconds since the run's start (monotonic
clock); everything in the report is computed from these records, so a saved JSON can be re-reported and
compared later."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1

# The phases of one session, in order. ``spawn`` overlaps ``start``: it runs from the start request to the
# ready event, which is the wait a person sees after pressing Start.
PHASES = ("wait", "login", "start", "spawn", "open", "kernel", "cells", "think", "stop")
# Phases whose durations are latencies worth percentiles (``wait`` and ``think`` are the tool's own doing).
TIMED_PHASES = ("login", "start", "spawn", "open", "kernel", "cell", "stop", "session")


@dataclass
class Step:
    phase: str
    t0: float
    t1: float | None = None
    ok: bool = True
    reason: str | None = None  # short, grouped in the report ("HTTP 500", "spawn failed: ...")
    detail: str | None = None  # one full example message

    @property
    def duration(self) -> float | None:
        return None if self.t1 is None else self.t1 - self.t0


@dataclass
class UserRecord:
    name: str
    arrival: float  # planned arrival (seconds after the start)
    steps: list[Step] = field(default_factory=list)
    cells: list[float] = field(default_factory=list)  # seconds per cell, in order
    queue_positions: list[int] = field(default_factory=list)  # as reported by the hub's progress events
    retries_429: int = 0  # start requests answered 429 (JupyterHub's concurrent_spawn_limit)
    wait_429: float = 0.0  # seconds spent waiting the Retry-After of those answers
    redirects: int = 0  # redirects followed while opening the server
    reconnects: int = 0  # requests re-sent after a kept-alive connection closed before answering
    outcome: str = "pending"  # ok | failed | cancelled | pending
    end: float | None = None

    def failed_step(self) -> Step | None:
        return next((s for s in self.steps if not s.ok), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UserRecord:
        steps = [Step(**s) for s in data.get("steps", [])]
        return cls(**{**data, "steps": steps})


@dataclass
class RunRecord:
    hub_url: str
    hub_version: str | None
    started_at: str  # ISO 8601 UTC wall clock of t=0
    plan: dict[str, Any]  # the options, secrets removed
    users: list[UserRecord] = field(default_factory=list)
    duration: float = 0.0
    interrupted: str | None = None  # why the run stopped early ("Ctrl-C", "--max-duration reached")
    machine: dict[str, Any] = field(default_factory=dict)  # load average, cpu count
    cleanup: dict[str, Any] = field(default_factory=dict)  # servers stopped, users deleted, left behind
    tags: dict[str, str] = field(default_factory=dict)  # --tag KEY=VALUE (e.g. commit, hub kind)
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        from .stats import summarize

        out = asdict(self)
        out["users"] = [u.to_json() for u in self.users]
        out["summary"] = summarize(self)  # convenience for readers; --compare recomputes it from the users
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        if data.get("format") != FORMAT:
            raise ValueError(
                f"not a hubkit rehearse result (format {data.get('format')!r}, expected {FORMAT})"
            )
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["users"] = [UserRecord.from_json(u) for u in data.get("users", [])]
        return cls(**fields)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read a result file ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a hubkit rehearse result (expected a JSON object)")
        try:
            return cls.from_json(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None
