"""The live view: users per phase, outcomes, errors so far and the current p50/p95 of each phase.

On a terminal it is a rich table redrawn twice a second; anywhere else (a CI log, a pipe, ``nohup``) it is one
plain line every few seconds, so a log of the run stays readable.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from .record import PHASES
from .stats import fmt_seconds

LIVE_PHASES = ("login", "start", "spawn", "open", "kernel", "cell", "stop")


@dataclass
class Snapshot:
    elapsed: float
    total: int
    arrived: int
    in_phase: dict[str, int]
    ok: int
    failed: int
    cancelled: int
    stats: dict[str, tuple[int, float | None, float | None]]  # phase -> (n, p50, p95)
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (count, phase, reason), top few
    label: str = "running"


class View(Protocol):
    interval: float

    def start(self, total: int) -> None: ...
    def update(self, snap: Snapshot) -> None: ...
    def message(self, text: str) -> None: ...
    def stop(self) -> None: ...


class NullView:
    interval = 1.0

    def start(self, total: int) -> None:
        return None

    def update(self, snap: Snapshot) -> None:
        return None

    def message(self, text: str) -> None:
        return None

    def stop(self) -> None:
        return None


def plain_line(snap: Snapshot) -> str:
    active = " ".join(f"{p}={snap.in_phase[p]}" for p in PHASES if snap.in_phase.get(p))
    lat = " ".join(
        f"{p} p50={fmt_seconds(snap.stats[p][1])} p95={fmt_seconds(snap.stats[p][2])}"
        for p in ("login", "spawn", "open", "kernel", "stop")
        if p in snap.stats
    )
    parts = [
        f"[rehearse] t={snap.elapsed:.0f}s {snap.label}",
        f"arrived {snap.arrived}/{snap.total}",
        f"ok {snap.ok} failed {snap.failed}" + (f" cancelled {snap.cancelled}" if snap.cancelled else ""),
    ]
    if active:
        parts.append(f"now: {active}")
    if lat:
        parts.append(lat)
    if snap.errors:
        n, phase, reason = snap.errors[0]
        parts.append(f"top error: {n}x {phase}: {reason}")
    return " | ".join(parts)


class PlainView:
    """One line per ``interval`` seconds (and a last one at the end)."""

    def __init__(self, out: TextIO | None = None, interval: float = 10.0) -> None:
        self.out = out or sys.stdout
        self.interval = interval
        self._last: Snapshot | None = None

    def start(self, total: int) -> None:
        self.message(f"{total} users; a status line every {self.interval:g} s")

    def update(self, snap: Snapshot) -> None:
        self._last = snap
        print(plain_line(snap), file=self.out, flush=True)

    def message(self, text: str) -> None:
        print(f"[rehearse] {text}", file=self.out, flush=True)

    def stop(self) -> None:
        return None


class RichView:
    interval = 0.5

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console()
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self._started = False

    def start(self, total: int) -> None:
        if not self._started:
            self.live.start()
            self._started = True

    def _render(self, snap: Snapshot) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        head = Text.assemble(
            ("hubkit rehearse ", "bold"),
            f"t={snap.elapsed:.0f}s  {snap.label}  arrived {snap.arrived}/{snap.total}  ",
            (f"ok {snap.ok}", "green"),
            "  ",
            (f"failed {snap.failed}", "red" if snap.failed else ""),
            f"  cancelled {snap.cancelled}" if snap.cancelled else "",
        )
        table = Table(box=None, pad_edge=False)
        table.add_column("phase")
        table.add_column("now", justify="right")
        table.add_column("done", justify="right")
        table.add_column("p50", justify="right")
        table.add_column("p95", justify="right")
        for phase in ("wait", *LIVE_PHASES, "think"):
            n, p50, p95 = snap.stats.get(phase, (0, None, None))
            now = snap.in_phase.get(phase, 0)
            if phase == "cell":
                now = snap.in_phase.get("cells", 0)
            if not now and not n:
                continue
            table.add_row(phase, str(now), str(n), fmt_seconds(p50), fmt_seconds(p95))
        parts: list[Any] = [head, table]
        for count, phase, reason in snap.errors:
            parts.append(Text(f"  {count}x {phase}: {reason}", style="red"))
        return Group(*parts)

    def update(self, snap: Snapshot) -> None:
        if self._started:
            self.live.update(self._render(snap))

    def message(self, text: str) -> None:
        from rich.text import Text

        self.console.print(Text.assemble(("rehearse: ", "bold"), text), highlight=False)

    def stop(self) -> None:
        if self._started:
            self.live.stop()
            self._started = False


def choose_view(mode: str, every: float) -> View:
    """``auto``: rich on a terminal, plain lines otherwise."""
    if mode == "off":
        return NullView()
    if mode == "rich" or (mode == "auto" and sys.stdout.isatty()):
        return RichView()
    return PlainView(interval=every)
