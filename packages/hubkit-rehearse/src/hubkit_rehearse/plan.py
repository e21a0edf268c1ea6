"""The plan of a rehearsal: who arrives when, how they log in, what each session does, and the bounds.

Arrival times are deterministic (quantiles of the chosen curve), so two runs with the same flags put the same
load on the hub at the same moments, and a comparison between two hubs compares like with like.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

# Bounds no flag can lift: a typo must not become a denial of service.
MAX_USERS = 5000
MAX_CONCURRENCY = 2000
MAX_DURATION = 6 * 3600.0
# More users than this needs --yes: a rehearsal is a load test on a real hub.
CONFIRM_ABOVE = 10

DEFAULT_CELLS: tuple[tuple[str, str], ...] = (
    ("print(6 * 7)", "42"),
    ("import sys; sys.version_info.major", "3"),
    ("sum(range(100000))", "4999950000"),
)


class PlanError(ValueError):
    """A flag combination that cannot run; the message names the flag."""


@dataclass(frozen=True)
class Cell:
    code: str
    expect: str  # a substring the cell's output (stream text or text/plain result) must contain


@dataclass
class Plan:
    hub_url: str  # the hub's public URL (where browsers go), e.g. http://127.0.0.1:8000/
    users: int = 5
    user_pattern: str = "rehearse-{i}"
    first_index: int = 1
    login: str = "form"  # form | token | file
    password: str = ""
    admin_token: str | None = None
    user_file: Path | None = None
    ca_file: Path | None = None  # CA bundle for a hub with a private CA (https)
    ramp: float = 0.0
    ramp_shape: str = "uniform"  # uniform | bell
    server_name: str = ""
    user_options: dict[str, Any] = field(default_factory=dict)
    open: str = "lab"  # lab | api | none
    kernel: bool = True
    cells: tuple[Cell, ...] = tuple(Cell(c, e) for c, e in DEFAULT_CELLS)
    think: tuple[float, float] = (0.0, 0.0)  # uniform between the two, per user
    stop: bool = True
    keep: bool = False
    concurrency: int = 200
    max_duration: float = 1800.0
    spawn_timeout: float = 600.0
    request_timeout: float = 60.0
    cleanup_timeout: float = 180.0
    seed: int = 0
    yes: bool = False

    def validate(self) -> None:
        if not 1 <= self.users <= MAX_USERS:
            raise PlanError(f"--users must be between 1 and {MAX_USERS}")
        if "{i" not in self.user_pattern and self.login != "file":
            raise PlanError("--user-pattern must contain {i} (e.g. rehearse-{i} or student{i:03d})")
        if self.login not in ("form", "token", "file"):
            raise PlanError("--login must be form, token or file")
        if self.login == "token" and not self.admin_token:
            raise PlanError(
                "--login token needs an admin token (--admin-token-file or $HUBKIT_REHEARSE_ADMIN_TOKEN)"
            )
        if self.login == "file" and self.user_file is None:
            raise PlanError("--login file needs --user-file")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise PlanError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}")
        if not 0 < self.max_duration <= MAX_DURATION:
            raise PlanError(f"--max-duration must be between 0 and {MAX_DURATION:.0f} seconds")
        if not 0 <= self.ramp <= self.max_duration:
            raise PlanError("--ramp must be between 0 and --max-duration")
        if self.ramp_shape not in ("uniform", "bell"):
            raise PlanError("--ramp-shape must be uniform or bell")
        if self.open not in ("lab", "api", "none"):
            raise PlanError("--open must be lab, api or none")
        lo, hi = self.think
        if not 0 <= lo <= hi:
            raise PlanError("--think must be SECONDS or MIN-MAX with 0 <= MIN <= MAX")
        if self.users > CONFIRM_ABOVE and not self.yes:
            raise PlanError(
                f"{self.users} users against {self.hub_url}: this is a load test on a real hub; "
                f"add --yes to confirm (needed above {CONFIRM_ABOVE} users)"
            )

    @property
    def runs_kernel(self) -> bool:
        return self.open == "lab" and self.kernel

    def public(self) -> dict[str, Any]:
        """The plan as recorded in the result file: no password, no token."""
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            if k in ("password", "admin_token"):
                out[k] = "(set)" if v else None
            elif k == "cells":
                out[k] = [{"code": c.code, "expect": c.expect} for c in v]
            elif isinstance(v, Path):
                out[k] = str(v)
            elif isinstance(v, tuple):
                out[k] = list(v)
            else:
                out[k] = v
        return out


def user_names(pattern: str, count: int, first: int = 1) -> list[str]:
    try:
        names = [pattern.format(i=first + n) for n in range(count)]
    except (KeyError, IndexError, ValueError) as exc:
        raise PlanError(f"--user-pattern {pattern!r} is not a valid pattern ({exc})") from None
    if len(set(names)) != len(names):
        raise PlanError(f"--user-pattern {pattern!r} gives duplicate names")
    return names


def arrivals(count: int, ramp: float, shape: str) -> list[float]:
    """Seconds after the start at which each user arrives, in order. ``uniform`` spreads them evenly over
    the ramp; ``bell`` puts them at the quantiles of a normal curve centred on the middle of the ramp with
    the ramp spanning +-3 sigma (a class told to be there "at 9:00": most arrive within a minute of it)."""
    if count <= 0:
        return []
    if ramp <= 0 or count == 1:
        return [0.0] * count
    if shape == "uniform":
        return [ramp * i / (count - 1) for i in range(count)]
    curve = NormalDist(mu=ramp / 2, sigma=ramp / 6)
    return [min(ramp, max(0.0, curve.inv_cdf((i + 0.5) / count))) for i in range(count)]


def think_times(count: int, bounds: tuple[float, float], seed: int) -> list[float]:
    lo, hi = bounds
    rng = random.Random(seed)
    return [lo if hi == lo else rng.uniform(lo, hi) for _ in range(count)]


def parse_think(text: str) -> tuple[float, float]:
    try:
        if "-" in text:
            lo, hi = text.split("-", 1)
            return float(lo), float(hi)
        return float(text), float(text)
    except ValueError:
        raise PlanError(f"--think {text!r}: expected SECONDS or MIN-MAX") from None


def load_cells(path: Path) -> tuple[Cell, ...]:
    """A JSON list of ``{"code": "...", "expect": "..."}``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PlanError(f"--cells-file {path}: {exc}") from None
    if not isinstance(data, list) or not all(
        isinstance(c, dict) and isinstance(c.get("code"), str) and isinstance(c.get("expect", ""), str)
        for c in data
    ):
        raise PlanError(f'--cells-file {path}: expected a JSON list of {{"code": str, "expect": str}}')
    return tuple(Cell(c["code"], c.get("expect", "")) for c in data)


def load_user_file(path: Path) -> list[tuple[str, str]]:
    """Lines of ``NAME TOKEN`` (whitespace or comma separated); blank lines and ``#`` comments skipped."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise PlanError(f"--user-file {path}: {exc}") from None
    out: list[tuple[str, str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        if len(parts) != 2:
            raise PlanError(f"--user-file {path}:{n}: expected NAME TOKEN")
        out.append((parts[0], parts[1]))
    if not out:
        raise PlanError(f"--user-file {path}: no users in it")
    return out
