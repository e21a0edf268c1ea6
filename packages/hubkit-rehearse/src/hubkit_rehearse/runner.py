"""The rehearsal as a whole: preflight, users arriving on schedule with bounded concurrency, the deadline,
Ctrl-C, and the cleanup that stops every server the run started and removes the users it created.

Ctrl-C (or SIGTERM) once: no new arrivals, running sessions are cancelled, cleanup runs and the (partial)
report is still written. Twice: cleanup is abandoned and what is left is named in the result.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .admin import Admin
from .browser import Browser, HubHTTPError, Origin
from .live import NullView, Snapshot, View
from .plan import Plan, arrivals, load_user_file, think_times, user_names
from .record import TIMED_PHASES, RunRecord, Step, UserRecord
from .session import Clock, Session, classify
from .stats import percentile


class PreflightError(Exception):
    """The hub cannot be rehearsed against as asked (unreachable, not a hub, token refused)."""


@dataclass
class Cleanup:
    servers_stopped: int = 0
    servers_left_running: list[str] = field(default_factory=list)
    stop_failures: dict[str, str] = field(default_factory=dict)
    users_created: int = 0
    users_deleted: int = 0
    users_left: list[str] = field(default_factory=list)
    tokens_revoked: int = 0
    note: str | None = None


class Runner:
    def __init__(self, plan: Plan, view: View | None = None, tags: dict[str, str] | None = None) -> None:
        self.plan = plan
        self.view: View = view or NullView()
        self.tags = dict(tags or {})
        self.origin = Origin(plan.hub_url)
        self.ca_file = str(plan.ca_file) if plan.ca_file else None
        self.clock = Clock()
        self.sessions: list[Session] = []
        self.admin: Admin | None = None
        self.created: set[str] = set()
        self.stop_reason: str | None = None
        self._stop = asyncio.Event()
        self._interrupts = 0
        self._cleanup_task: asyncio.Task[None] | None = None
        self.phase_label = "running"
        self.cleanup_result = Cleanup()
        self._deleted: set[str] = set()

    # -- signals --------------------------------------------------------------------------------------------

    def interrupt(self, reason: str = "Ctrl-C") -> None:
        self._interrupts += 1
        if self._interrupts == 1:
            self.stop_reason = self.stop_reason or reason
            self.view.message(
                f"{reason}: stopping arrivals and sessions, then stopping the servers this run started"
            )
            self._stop.set()
        elif self._cleanup_task is not None and not self._cleanup_task.done():
            self.view.message("interrupted again: abandoning cleanup (what is left is listed in the result)")
            self._cleanup_task.cancel()

    def _install_signals(self) -> Callable[[], None]:
        loop = asyncio.get_running_loop()
        installed = []
        for sig, label in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
            try:
                loop.add_signal_handler(sig, self.interrupt, label)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread (e.g. called from a library)
                pass

        def remove() -> None:
            for sig in installed:
                loop.remove_signal_handler(sig)

        return remove

    # -- the run --------------------------------------------------------------------------------------------

    async def preflight(self) -> str | None:
        probe = Browser(self.origin, timeout=self.plan.request_timeout, ca_file=self.ca_file)
        try:
            r = await probe.request("GET", self.origin.hub("hub/api/"))
        except Exception as exc:
            raise PreflightError(
                f"cannot reach {self.origin.hub('hub/api/')}: {classify(exc, '')[1]}"
            ) from None
        finally:
            await probe.aclose()
        try:
            version = r.json().get("version") if r.status_code == 200 else None
        except ValueError:
            version = None
        if r.status_code != 200 or version is None:
            raise PreflightError(
                f"{self.origin.hub('hub/api/')} answered HTTP {r.status_code} without a hub version: "
                "is this the hub's public URL (where browsers go)?"
            )
        if self.plan.admin_token:
            self.admin = Admin(self.origin, self.plan.admin_token, self.plan.request_timeout, self.ca_file)
            try:
                await self.admin.whoami()
            except HubHTTPError as exc:
                raise PreflightError(f"the admin token was refused: {exc}") from None
            except Exception as exc:
                raise PreflightError(f"checking the admin token failed: {classify(exc, '')[1]}") from None
        return str(version)

    async def run(self) -> RunRecord:
        remove_signals = self._install_signals()
        try:
            try:
                record = await self._prepare()
            except PreflightError:
                if self.created:  # created some users before it failed: remove them again
                    await self._cleanup()
                raise
            await self._drive()
            self.phase_label = "cleaning up"
            self._cleanup_task = asyncio.create_task(self._cleanup())
            try:
                await self._cleanup_task
            except asyncio.CancelledError:
                if not (self._cleanup_task.cancelled() and self._interrupts > 1):
                    raise  # abandoned on purpose is fine; _cleanup recorded what it got to
        finally:
            remove_signals()
            self.view.stop()
            for s in self.sessions:
                await s.aclose()
            if self.admin is not None:
                await self.admin.aclose()
        for u in record.users:
            if u.outcome == "pending":
                u.outcome = "not started"
        record.duration = self.clock.now()
        record.interrupted = self.stop_reason
        record.machine["loadavg_end"] = list(os.getloadavg())
        record.cleanup = dict(self.cleanup_result.__dict__)
        return record

    async def _prepare(self) -> RunRecord:
        plan = self.plan
        load_start = os.getloadavg()
        version = await self.preflight()
        tokens: dict[str, str] = {}
        if plan.login == "file":
            assert plan.user_file is not None
            pairs = load_user_file(plan.user_file)[: plan.users]  # --users was checked against the file
            names = [n for n, _ in pairs]
            tokens = dict(pairs)
        else:
            names = user_names(plan.user_pattern, plan.users, plan.first_index)
        if self.admin is not None:
            try:
                if plan.login == "token":
                    self.view.message(f"creating {len(names)} users through the REST API")
                    await self.admin.create_users(names, self.created)
                else:
                    self.created = set(names) - await self.admin.existing(names)
            except Exception as exc:
                raise PreflightError(f"preparing the users failed: {classify(exc, '')[1]}") from None
        self.clock = Clock()
        record = RunRecord(
            hub_url=self.origin.base,
            hub_version=version,
            started_at="",
            plan=plan.public(),
            tags=self.tags,
            machine={"loadavg_start": list(load_start), "cpus": os.cpu_count()},
        )
        thinks = think_times(len(names), plan.think, plan.seed)
        for name, at, think in zip(
            names, arrivals(len(names), plan.ramp, plan.ramp_shape), thinks, strict=True
        ):
            rec = UserRecord(name=name, arrival=at)
            record.users.append(rec)
            self.sessions.append(
                Session(
                    plan=plan,
                    origin=self.origin,
                    clock=self.clock,
                    record=rec,
                    think=think,
                    token=tokens.get(name),
                    admin=self.admin,
                )
            )
        self.clock.reset()  # t=0 is when the first user may arrive, after the setup above
        record.started_at = datetime.now(UTC).isoformat()
        self.view.start(len(names))
        return record

    async def _drive(self) -> None:
        slots = asyncio.Semaphore(self.plan.concurrency)

        async def arrive(session: Session) -> None:
            rec = session.record
            delay = rec.arrival - self.clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
            arrived = self.clock.now()
            full = slots.locked()  # --concurrency sessions running: this wait is the tool's, not the hub's
            async with slots:
                if full:
                    rec.steps.append(Step("wait", arrived, self.clock.now()))
                await session.run()

        tasks = [asyncio.create_task(arrive(s), name=f"rehearse-{s.name}") for s in self.sessions]
        refresher = asyncio.create_task(self._refresh())
        stop_waiter = asyncio.create_task(self._stop.wait())

        async def everyone() -> None:
            await asyncio.gather(*tasks, return_exceptions=True)

        all_done = asyncio.create_task(everyone())
        try:
            done, _ = await asyncio.wait(
                {all_done, stop_waiter}, timeout=self.plan.max_duration, return_when=asyncio.FIRST_COMPLETED
            )
            if all_done not in done:
                if not done:
                    self.stop_reason = (
                        self.stop_reason or f"--max-duration {self.plan.max_duration:.0f} s reached"
                    )
                    self.view.message(f"{self.stop_reason}: stopping the sessions still running")
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                all_done.cancel()
        finally:
            stop_waiter.cancel()
            refresher.cancel()
            self.view.update(self.snapshot())

    async def _refresh(self) -> None:
        while True:
            self.view.update(self.snapshot())
            await asyncio.sleep(self.view.interval)

    # -- cleanup --------------------------------------------------------------------------------------------

    async def _cleanup(self) -> None:
        result = self.cleanup_result = Cleanup(users_created=len(self.created))
        plan = self.plan
        interrupted = self.stop_reason is not None
        to_stop = [
            s
            for s in self.sessions
            if s.server_requested
            and not s.server_stopped
            and (interrupted or plan.stop or s.record.outcome != "ok")
        ]
        result.servers_left_running = [
            s.name for s in self.sessions if s.server_requested and not s.server_stopped and s not in to_stop
        ]
        sem = asyncio.Semaphore(min(plan.concurrency, 50))

        async def stop(s: Session) -> None:
            async with sem:
                try:
                    await s.stop_server(plan.cleanup_timeout)
                    result.servers_stopped += 1
                except Exception as exc:
                    result.stop_failures[s.name] = classify(exc, s.name)[1]

        if to_stop:
            self.view.message(f"stopping {len(to_stop)} servers this run started")
        try:
            await asyncio.gather(*(stop(s) for s in to_stop))
            await self._remove_users(result, sem)
        except asyncio.CancelledError:
            for s in to_stop:
                if not s.server_stopped:
                    result.stop_failures.setdefault(s.name, "cleanup abandoned")
            if self.admin is not None and not (plan.keep or not plan.stop):
                result.users_left = sorted(self.created - self._deleted)
            raise

    async def _remove_users(self, result: Cleanup, sem: asyncio.Semaphore) -> None:
        plan, admin = self.plan, self.admin
        if admin is None:
            if plan.login == "form" and not plan.keep:
                result.note = "form login without an admin token: users created by logging in are not removed"
            return
        keep = plan.keep or not plan.stop
        remove = sorted(self.created) if not keep else []
        if keep:
            result.users_left = sorted(self.created)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + plan.cleanup_timeout

        async def delete(name: str) -> None:
            async with sem:
                while loop.time() < deadline:
                    try:
                        if await admin.delete_user(name):
                            result.users_deleted += 1
                            self._deleted.add(name)
                            return
                    except Exception as exc:
                        result.stop_failures[name] = classify(exc, name)[1]
                        break
                    await asyncio.sleep(0.5)
            result.users_left.append(name)

        if remove:
            self.view.message(f"removing {len(remove)} users this run created")
        await asyncio.gather(*(delete(n) for n in remove))
        for name in list(admin.token_ids):
            if name not in remove:
                try:
                    await admin.revoke_token(name)
                    result.tokens_revoked += 1
                except Exception:  # the token expires anyway (it was issued for the run's length)
                    pass

    # -- live figures ---------------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        now = self.clock.now()
        in_phase: dict[str, int] = {}
        counts = {"ok": 0, "failed": 0, "cancelled": 0}
        arrived = 0
        errors: dict[tuple[str, str], int] = {}
        durations: dict[str, list[float]] = {p: [] for p in TIMED_PHASES}
        for s in self.sessions:
            rec = s.record
            if rec.arrival <= now:
                arrived += 1
            if rec.outcome in counts:
                counts[rec.outcome] += 1
            elif rec.steps:  # in its latest step (or just between two)
                in_phase[rec.steps[-1].phase] = in_phase.get(rec.steps[-1].phase, 0) + 1
            elif rec.arrival <= now:  # arrived, not yet running (a full --concurrency)
                in_phase["wait"] = in_phase.get("wait", 0) + 1
            for st in rec.steps:
                if st.t1 is not None and st.ok and st.phase in durations:
                    durations[st.phase].append(st.t1 - st.t0)
                elif not st.ok and st.reason != "cancelled":
                    key = (st.phase, st.reason or "unknown")
                    errors[key] = errors.get(key, 0) + 1
            durations["cell"].extend(rec.cells)
        stats = {
            p: (len(v), percentile(v, 50), percentile(v, 95))
            for p, v in durations.items()
            if v and p != "session"
        }
        top = sorted(((n, p, r) for (p, r), n in errors.items()), reverse=True)[:3]
        return Snapshot(
            elapsed=now,
            total=len(self.sessions),
            arrived=arrived,
            in_phase=in_phase,
            ok=counts["ok"],
            failed=counts["failed"],
            cancelled=counts["cancelled"],
            stats=stats,
            errors=top,
            label=f"{self.phase_label} ({self.stop_reason})" if self.stop_reason else self.phase_label,
        )
