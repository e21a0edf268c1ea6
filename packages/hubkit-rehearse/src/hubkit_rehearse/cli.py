"""``hubkit rehearse`` (with hubkit-core installed), ``hubkit-rehearse`` and ``python -m hubkit_rehearse``.

Exit codes: 0 every session succeeded; 1 some failed or the run hit --max-duration; 2 bad flags, or the hub
could not be rehearsed against (unreachable, admin token refused); 130 stopped with Ctrl-C / SIGTERM.
Secrets never go on the command line (where ``ps`` shows them): the password and the admin token come from
a file or an environment variable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Rehearse a class of N users against a hub (hubkit or JupyterHub) before the class does it for real: users
arrive over a ramp, log in, press Start, wait for their server, open JupyterLab through the proxy, run a few
cells in a kernel, think, and stop. Every step is timed; the report (terminal, JSON, PNG timeline, one HTML
file) gives percentiles per phase, throughput, queue positions and failures grouped by reason."""

EPILOG = """\
examples:
  hubkit rehearse http://127.0.0.1:8000 --users 5                     # form login, any password (dummy auth)
  HUBKIT_REHEARSE_ADMIN_TOKEN=... hubkit rehearse https://hub.example.org \\
      --login token --users 200 --ramp 120 --ramp-shape bell --think 60-300 --yes
  hubkit rehearse --compare before/result.json after/result.json
"""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def configure(p: argparse.ArgumentParser) -> None:
    """The rehearse options, on whichever parser hosts them (``hubkit rehearse`` or the standalone one)."""
    p.add_argument(
        "hub_url", nargs="?", help="the hub's public URL, where browsers go (e.g. http://127.0.0.1:8000)"
    )
    who = p.add_argument_group("users and login")
    who.add_argument(
        "--users",
        type=int,
        default=None,
        help="simulated users (default 5, or every line of --user-file; more than 10 needs --yes)",
    )
    who.add_argument(
        "--user-pattern", default="rehearse-{i}", help="user names, {i} counts up (default rehearse-{i})"
    )
    who.add_argument("--first-index", type=int, default=1, help="first value of {i} (default 1)")
    who.add_argument(
        "--login",
        choices=("form", "token", "file"),
        default="form",
        help="form: the hub's login form with a shared password (dummy/shared-password auth); token: an admin "
        "token creates the users and a token each (any authenticator); file: NAME TOKEN lines from --user-file",
    )
    who.add_argument(
        "--password-file", type=Path, help="shared password for --login form (or $HUBKIT_REHEARSE_PASSWORD)"
    )
    who.add_argument(
        "--admin-token-file",
        type=Path,
        help="admin API token (or $HUBKIT_REHEARSE_ADMIN_TOKEN): needed for --login token; with --login form "
        "it lets the run remove the users it created",
    )
    who.add_argument("--user-file", type=Path, help="for --login file: lines of NAME TOKEN")
    who.add_argument("--ca-file", type=Path, help="CA bundle to verify an https hub signed by a private CA")
    when = p.add_argument_group("arrivals")
    when.add_argument(
        "--ramp", type=float, default=0.0, help="seconds over which users arrive (default 0: all at once)"
    )
    when.add_argument(
        "--ramp-shape",
        choices=("uniform", "bell"),
        default="uniform",
        help="uniform, or bell: most users near the middle of the ramp (a class told to come at 9:00)",
    )
    what = p.add_argument_group("the session")
    what.add_argument("--server-name", default="", help="start this named server instead of the default one")
    what.add_argument(
        "--options", default=None, help="user_options for the start request, as JSON (e.g. a profile)"
    )
    what.add_argument(
        "--open",
        choices=("lab", "api", "none"),
        default="lab",
        help="lab: JupyterLab as a browser opens it (OAuth redirects, cookies, _xsrf), then a kernel; api: only "
        "the server's /api through the proxy (for test spawners); none: skip",
    )
    what.add_argument(
        "--no-kernel", action="store_true", help="with --open lab: do not start a kernel or run cells"
    )
    what.add_argument(
        "--cells-file",
        type=Path,
        help='JSON list of {"code": ..., "expect": ...} to run (default: 3 small cells)',
    )
    what.add_argument(
        "--think", default="0", help="seconds each user stays after the cells: S or MIN-MAX (default 0)"
    )
    what.add_argument(
        "--leave-running",
        action="store_true",
        help="do not stop the servers (e.g. to test the culler); implies --keep",
    )
    what.add_argument("--keep", action="store_true", help="do not remove the users this run created")
    bounds = p.add_argument_group("bounds and safety")
    bounds.add_argument(
        "--concurrency", type=int, default=200, help="sessions in flight at most (default 200)"
    )
    bounds.add_argument(
        "--max-duration",
        type=float,
        default=1800.0,
        help="stop everything after this many seconds (default 1800)",
    )
    bounds.add_argument(
        "--spawn-timeout",
        type=float,
        default=600.0,
        help="seconds from Start to ready before a session fails (default 600)",
    )
    bounds.add_argument(
        "--request-timeout", type=float, default=60.0, help="seconds per HTTP request or cell (default 60)"
    )
    bounds.add_argument(
        "--cleanup-timeout",
        type=float,
        default=180.0,
        help="seconds allowed to stop servers and remove users (default 180)",
    )
    bounds.add_argument("--yes", action="store_true", help="confirm a run with more than 10 users")
    out = p.add_argument_group("output")
    out.add_argument(
        "--out",
        type=Path,
        help="directory for result.json, timeline.png, report.html (default ./rehearse-<time>)",
    )
    out.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="recorded in the result (e.g. label=hubkit, commit=abc123)",
    )
    out.add_argument(
        "--live",
        choices=("auto", "rich", "plain", "off"),
        default="auto",
        help="live view (auto: rich on a terminal, plain lines otherwise)",
    )
    out.add_argument(
        "--progress-every", type=float, default=10.0, help="seconds between plain status lines (default 10)"
    )
    out.add_argument("--seed", type=int, default=0, help="seed for think times (default 0)")
    out.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("A.json", "B.json"),
        help="print two results side by side and exit",
    )
    out.add_argument(
        "--from-json",
        type=Path,
        metavar="RESULT.json",
        help="re-render the report, PNG and HTML of a saved result and exit",
    )
    p.set_defaults(hubkit_command=run_from_args)


def add_command(subparsers: Any) -> None:
    """Entry point ``hubkit.commands``: adds ``rehearse`` to the ``hubkit`` CLI."""
    p = subparsers.add_parser(
        "rehearse",
        help="rehearse N users against a hub (logins, spawns, JupyterLab, kernels) and report",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure(p)


def build_parser(prog: str = "hubkit-rehearse") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure(p)
    return p


def main(argv: Sequence[str] | None = None, prog: str = "hubkit-rehearse") -> int:
    return run_from_args(build_parser(prog).parse_args(argv))


def _fail(msg: str) -> int:
    print(f"hubkit rehearse: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def _secret(path: Path | None, env: str) -> str | None:
    if path is not None:
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    value = os.environ.get(env)
    return value.strip() if value else None


def plan_from_args(args: argparse.Namespace) -> Any:
    from .plan import DEFAULT_CELLS, Cell, Plan, PlanError, load_cells, load_user_file, parse_think

    try:
        password = _secret(args.password_file, "HUBKIT_REHEARSE_PASSWORD") or ""
        admin_token = _secret(args.admin_token_file, "HUBKIT_REHEARSE_ADMIN_TOKEN")
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    options: dict[str, Any] = {}
    if args.options:
        try:
            options = json.loads(args.options)
        except json.JSONDecodeError as exc:
            raise PlanError(f"--options is not JSON: {exc}") from None
        if not isinstance(options, dict):
            raise PlanError("--options must be a JSON object")
    cells = load_cells(args.cells_file) if args.cells_file else tuple(Cell(c, e) for c, e in DEFAULT_CELLS)
    users = 5 if args.users is None else args.users
    if args.login == "file" and args.user_file is not None:
        listed = len(load_user_file(args.user_file))
        users = listed if args.users is None else args.users
        if users > listed:
            raise PlanError(f"--users {users}, but --user-file lists only {listed}")
    plan = Plan(
        hub_url=args.hub_url,
        users=users,
        user_pattern=args.user_pattern,
        first_index=args.first_index,
        login=args.login,
        password=password,
        admin_token=admin_token,
        user_file=args.user_file,
        ca_file=args.ca_file,
        ramp=args.ramp,
        ramp_shape=args.ramp_shape,
        server_name=args.server_name,
        user_options=options,
        open=args.open,
        kernel=not args.no_kernel,
        cells=cells,
        think=parse_think(args.think),
        stop=not args.leave_running,
        keep=args.keep or args.leave_running,
        concurrency=args.concurrency,
        max_duration=args.max_duration,
        spawn_timeout=args.spawn_timeout,
        request_timeout=args.request_timeout,
        cleanup_timeout=args.cleanup_timeout,
        seed=args.seed,
        yes=args.yes,
    )
    plan.validate()
    return plan


def _tags(items: list[str]) -> dict[str, str]:
    from .plan import PlanError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PlanError(f"--tag {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def write_outputs(run: Any, out: Path) -> dict[str, Path]:
    from .htmlreport import write_html
    from .plots import timeline_png
    from .report import label, run_tables

    out.mkdir(parents=True, exist_ok=True)
    result = out / "result.json"
    run.save(result)
    title = run.tags.get("label") or f"{label(run)}: {len(run.users)} users"
    png = timeline_png(run, out / "timeline.png", title=title)
    lines, tables = run_tables(run)
    page = write_html(out / "report.html", f"hubkit rehearse: {label(run)}", lines, tables, png)
    return {"result": result, "timeline": png, "report": page}


def run_from_args(args: argparse.Namespace) -> int:
    from .plan import PlanError
    from .record import RunRecord
    from .report import compare_tables, print_rich, run_tables

    if args.compare:
        try:
            a, b = (RunRecord.load(p) for p in args.compare)
        except ValueError as exc:
            return _fail(str(exc))
        print_rich(*compare_tables(a, b))
        return EXIT_OK
    if args.from_json:
        try:
            run = RunRecord.load(args.from_json)
        except ValueError as exc:
            return _fail(str(exc))
        files = write_outputs(run, args.out or args.from_json.parent)
        print_rich(*run_tables(run))
        print("files: " + ", ".join(str(p) for p in files.values()))
        return EXIT_OK
    if not args.hub_url:
        return _fail("the hub URL is required (or --compare A.json B.json)")
    try:
        plan = plan_from_args(args)
        tags = _tags(args.tag)
        from .browser import Origin

        Origin(plan.hub_url)
    except (PlanError, ValueError) as exc:
        return _fail(str(exc))
    from .live import choose_view
    from .runner import PreflightError, Runner

    out = args.out or Path(f"rehearse-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}")
    runner = Runner(plan, choose_view(args.live, args.progress_every), tags)
    try:
        run = asyncio.run(runner.run())
    except PreflightError as exc:
        return _fail(str(exc))
    except PlanError as exc:
        return _fail(str(exc))
    files = write_outputs(run, out)
    print_rich(*run_tables(run))
    print("files: " + ", ".join(str(p) for p in files.values()), flush=True)
    if run.interrupted and runner.stop_reason in ("Ctrl-C", "SIGTERM"):
        return EXIT_INTERRUPTED
    outcomes = {u.outcome for u in run.users}
    return EXIT_OK if outcomes == {"ok"} else EXIT_FAILED
