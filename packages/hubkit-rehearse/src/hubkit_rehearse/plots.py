"""The timeline PNG: users in each phase over time (stacked), and each step's latency at the time it ended.
matplotlib with the Agg backend, so it works on a server without a display."""

from __future__ import annotations

from pathlib import Path

from .record import RunRecord
from .stats import latency_points, occupancy

COLOURS = {
    "wait": "#bbbbbb",
    "login": "#4c72b0",
    "start": "#8172b2",
    "spawn": "#dd8452",
    "open": "#55a868",
    "kernel": "#64b5cd",
    "cells": "#2a9d8f",
    "think": "#e9e4c9",
    "stop": "#c44e52",
}
LATENCY_PHASES = ("login", "spawn", "open", "kernel", "stop")


def timeline_png(run: RunRecord, path: Path, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    end = max(run.duration, max((u.end or 0.0 for u in run.users), default=0.0), 1.0)
    bin_seconds = max(0.5, end / 300)
    xs, series = occupancy(run.users, bin_seconds, end)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    try:
        phases = [p for p in COLOURS if p in series]
        if phases:
            top.stackplot(
                xs, *[series[p] for p in phases], labels=phases, colors=[COLOURS[p] for p in phases]
            )
            top.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
        top.set_ylabel("users in phase")
        top.set_title(title or f"{run.hub_url}: {len(run.users)} users", fontsize=11)
        top.grid(alpha=0.3)
        plotted = False
        for phase in LATENCY_PHASES:
            px, py = latency_points(run.users, phase)
            if px:
                bottom.scatter(px, py, s=6, alpha=0.6, color=COLOURS.get(phase, "#333333"), label=phase)
                plotted = True
        failed_x = [
            s.t1
            for u in run.users
            for s in u.steps
            if not s.ok and s.t1 is not None and s.reason != "cancelled"
        ]
        if failed_x:
            ymin = 0.001
            bottom.scatter(failed_x, [ymin] * len(failed_x), marker="x", color="black", s=14, label="failure")
            plotted = True
        if plotted:
            bottom.set_yscale("log")
            bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
        bottom.set_ylabel("step latency (s, log)")
        bottom.set_xlabel("seconds since the start of the run")
        bottom.grid(alpha=0.3, which="both")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
