"""The duty that runs managed services: start each ``[[services]]`` command, restart it with exponential backoff
when it exits, stop it (its whole process group) when the hub stops or the duty moves to another hub process.

What it does is written to the service's row (``services.process``: host, pid, start time, restarts, last
exit), so the API of any hub process shows it, and a hub restarted after ``kill -9`` stops the service process
its predecessor left behind (recognised by pid and start time on the same host) before starting a new one.
A service without a configured ``api_token`` gets a fresh token (stored hashed) each time supervision begins;
the previous one is revoked, and the OAuth client's secret follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update

from ..auth.tokens import hash_secret, issue_token
from ..config.models import ServiceConfig
from ..storage.access import Storage
from ..storage.orm import APIToken, OAuthClient, Service
from ..urls import HubUrls
from . import env, process
from .registry import MANAGED_TOKEN_KIND

log = logging.getLogger("hubkit.services")


@dataclass(frozen=True)
class Backoff:
    """Seconds before restart ``n`` (0-based): ``initial * 2**n`` up to ``maximum``; a process that ran for
    ``stable_after`` seconds resets the count."""

    initial: float = 1.0
    maximum: float = 60.0
    stable_after: float = 60.0

    def delay(self, failures: int) -> float:
        return float(min(self.maximum, self.initial * 2 ** min(failures, 30)))


def _now() -> str:
    return datetime.now(UTC).isoformat()


class ServiceSupervisor:
    def __init__(
        self,
        storage: Storage,
        urls: HubUrls,
        services: Sequence[ServiceConfig],
        *,
        api_url: str,
        backoff: Backoff | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        self.storage = storage
        self.urls = urls
        self.services = [s for s in services if s.managed]
        self.api_url = api_url
        self.backoff = backoff or Backoff()
        self.stop_timeout = stop_timeout

    async def run(self) -> None:
        """Supervise every managed service until cancelled; then stop them all."""
        if not self.services:
            return
        async with asyncio.TaskGroup() as group:
            for svc in self.services:
                group.create_task(self._supervise(svc), name=f"hubkit-service-{svc.name}")

    # -- the database record ----------------------------------------------------------------------------------
    async def _record(self, name: str, **changes: Any) -> None:
        """Best effort: the record is for people and for the next hub; a failed write must not stop supervision."""
        try:
            async with self.storage.tx() as session:
                row = (
                    await session.execute(select(Service).where(Service.name == name))
                ).scalar_one_or_none()
                if row is None:
                    return
                row.process = {**(row.process or {}), **changes}
                await session.commit()
        except Exception as exc:
            log.warning("service %s: could not record %s: %s", name, changes.get("state"), exc)

    async def _leftover(self, name: str) -> None:
        """Stop a process a killed hub left running for this service (same host, same pid and start time)."""
        async with self.storage.session() as session:
            record = (
                await session.execute(select(Service.process).where(Service.name == name))
            ).scalar_one_or_none() or {}
        pid, ticks = record.get("pid"), record.get("ticks")
        if (
            record.get("state") != "running"
            or record.get("host") != process.host_id()
            or not isinstance(pid, int)
        ):
            return
        if process.same_process(pid, ticks if isinstance(ticks, int) else None):
            log.warning("service %s: stopping pid %d, left running by a previous hub process", name, pid)
            process.signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout
            # not our child (no exit event to wait on): poll its /proc entry
            while process.same_process(pid, ticks) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            if process.same_process(pid, ticks):
                process.signal_group(pid, signal.SIGKILL)

    async def _fresh_token(self, svc: ServiceConfig) -> str:
        """Revoke the tokens generated for earlier runs, issue one for this run; the OAuth secret follows."""
        async with self.storage.tx() as session:
            row = (await session.execute(select(Service).where(Service.name == svc.name))).scalar_one()
            await session.execute(
                delete(APIToken).where(APIToken.service_id == row.id, APIToken.kind == MANAGED_TOKEN_KIND)
            )
            secret, _ = await issue_token(
                session,
                service_id=row.id,
                scopes=["inherit"],
                kind=MANAGED_TOKEN_KIND,
                note=f"generated for the managed service {svc.name}",
            )
            await session.execute(
                update(OAuthClient)
                .where(OAuthClient.service_id == row.id)
                .values(secret_hash=hash_secret(secret))
            )
            await session.commit()
        return secret

    async def _revoke(self, svc: ServiceConfig) -> None:
        async with self.storage.tx() as session:
            ids = select(Service.id).where(Service.name == svc.name).scalar_subquery()
            await session.execute(
                delete(APIToken).where(APIToken.service_id == ids, APIToken.kind == MANAGED_TOKEN_KIND)
            )
            await session.execute(
                update(OAuthClient).where(OAuthClient.service_id == ids).values(secret_hash="")
            )
            await session.commit()

    # -- one service --------------------------------------------------------------------------------------------
    async def _supervise(self, svc: ServiceConfig) -> None:
        """Run ``svc`` until cancelled: start it, wait for it, wait a growing delay, start it again."""
        running: process.Running | None = None
        failures = 0
        try:
            try:
                await self._leftover(svc.name)
            except Exception:
                log.exception("service %s: looking for a process left by a previous hub failed", svc.name)
            token = svc.api_token
            while token is None:
                try:
                    token = await self._fresh_token(svc)
                except Exception:
                    log.exception("service %s: could not issue its token; trying again", svc.name)
                    await asyncio.sleep(self.backoff.delay(failures))
                    failures += 1
            popen, account = process.account(svc.user)
            environment = env.build_env(
                svc, token=token, api_url=self.api_url, urls=self.urls, account=account
            )
            failures = restarts = 0
            while True:
                try:
                    running = await process.start(
                        svc.name, svc.command, environment, cwd=svc.cwd, popen=popen
                    )
                except OSError as exc:
                    log.error("service %s: cannot start %s: %s", svc.name, svc.command[0], exc)
                    await self._record(svc.name, state="failed-to-start", pid=None, error=str(exc), at=_now())
                else:
                    if await self._watch(svc, running, restarts, failures) >= self.backoff.stable_after:
                        failures = 0
                    running = None
                await asyncio.sleep(self.backoff.delay(failures))
                failures += 1
                restarts += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            # e.g. the account in `user` vanished: keep the hub serving, and say why the service is not running
            log.exception(
                "service %s: supervision failed; it will not be restarted by this hub process", svc.name
            )
        finally:
            await self._shut(svc, running, svc.api_token is None)

    async def _watch(
        self, svc: ServiceConfig, running: process.Running, restarts: int, failures: int
    ) -> float:
        """Record a started process, wait for it to exit, log and record the exit. Returns how long it ran."""
        began = time.monotonic()
        log.info("service %s started (pid %d): %s", svc.name, running.pid, " ".join(svc.command))
        await self._record(
            svc.name,
            state="running",
            host=process.host_id(),
            pid=running.pid,
            ticks=running.ticks,
            started=_now(),
            restarts=restarts,
            error=None,
        )
        code = await running.wait()
        ran = time.monotonic() - began
        delay = self.backoff.delay(0 if ran >= self.backoff.stable_after else failures)
        last = " | ".join(list(running.tail)[-5:])
        log.error(
            "service %s (pid %d) exited with status %s after %.1fs; restarting in %.0fs%s",
            svc.name,
            running.pid,
            code,
            ran,
            delay,
            f"; last output: {last}" if last else "",
        )
        await self._record(
            svc.name,
            state="restarting",
            pid=None,
            last_exit={"code": code, "at": _now(), "after_seconds": round(ran, 3)},
        )
        return ran

    async def _shut(self, svc: ServiceConfig, running: process.Running | None, generated: bool) -> None:
        with contextlib.suppress(Exception):
            if running is not None:
                code = await running.stop(self.stop_timeout)
                log.info("service %s (pid %d) stopped (status %s)", svc.name, running.pid, code)
            await self._record(svc.name, state="stopped", pid=None, stopped=_now())
            if generated:
                await self._revoke(svc)
