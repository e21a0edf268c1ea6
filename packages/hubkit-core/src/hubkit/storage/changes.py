"""Change notices: "token 12 / user 3 / group 7 changed", published once the transaction that changed it commits.

Why: the hub keeps what every request needs in memory (a token's or a session's caller with its scopes,
:mod:`hubkit.auth.cache`), and such a copy is only correct while nothing it was built from has changed. Every
write that could change it produces a notice here, so a copy is dropped before the next request can use it.

* Producers do nothing by hand: :mod:`.capture` watches the hub's database sessions (unit-of-work flushes and
  bulk ``UPDATE``/``DELETE`` statements on the watched tables) and stages notices, then calls :meth:`publish`
  after the commit, or drops them on rollback.
* Consumers :meth:`~ChangeFeed.subscribe` a listener. It runs in the publishing task, synchronously, before the
  commit call returns to the code that made the change, so that code's next request already sees it.

A notice may be broader than the change (``key`` ``None``: every row of that kind); it is never narrower.

**The seam for hub replicas (PostgreSQL).** :class:`LocalChanges` sees the writes of this process only, so a
consumer must not trust a copy older than :attr:`ChangeFeed.max_age` (writes by another process, e.g. the
``hubkit`` CLI or a second hub on the same database, show after at most that long). A feed for replicas
implements the same protocol: :meth:`~ChangeFeed.stage` runs inside the writing transaction and issues
``NOTIFY hubkit_changes, '<kind>:<key>'`` there (PostgreSQL delivers it at commit and drops it on rollback);
a task holding one connection with ``LISTEN hubkit_changes`` hands what arrives to the listeners (and, after
losing that connection, a notice for every kind, since notices may have been missed meanwhile). With that,
``max_age`` bounds only a lost notification and can be raised. That feed is :mod:`.pg_feed`, used whenever the
database is PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal, Protocol

# "client": the tokens an OAuth client (a user server) was given, keyed by the client's identifier;
# "spawn": new progress events of a spawn, keyed by the spawn's id (staged by spawn.progress, not by capture);
# "queue": the replicas' admission queue moved (staged by spawn.pg_queue, no key)
Kind = Literal["token", "user", "service", "group", "server", "client", "spawn", "queue"]
KINDS: tuple[Kind, ...] = ("token", "user", "service", "group", "server", "client", "spawn", "queue")
NOT_CACHED: frozenset[Kind] = frozenset({"spawn", "queue"})  # kinds no cached caller is built from


@dataclass(frozen=True, slots=True)
class Change:
    """``kind`` row ``key`` changed: a row id, or for users also a name; ``None`` means every row of the kind."""

    kind: Kind
    key: int | str | None = None


Listener = Callable[[frozenset[Change]], None]


class ChangeFeed(Protocol):
    @property
    def max_age(self) -> float:
        """Seconds a copy built from the database may be trusted at most (writes the feed cannot see)."""

    async def start(self) -> None:
        """Once the process serves: begin hearing other processes' changes (if the feed can)."""

    async def close(self) -> None:
        """Stop hearing them."""

    def stage(self, session: Any, changes: Collection[Change]) -> None:
        """Inside the writing transaction (``session`` is its SQLAlchemy ``Session``), before its commit."""

    def publish(self, changes: Collection[Change]) -> None:
        """After the commit: tell every listener of this process."""

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with each published set of changes; returns the unsubscribe function."""


class Fanout:
    """Listeners of one process, told in the publishing task (shared by the feeds)."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self.published = 0  # how many sets were published (tests and metrics)

    def publish(self, changes: Collection[Change]) -> None:
        if not changes:
            return
        frozen = frozenset(changes)
        self.published += 1
        for listener in list(self._listeners):
            listener(frozen)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe


class LocalChanges(Fanout):
    """The in-process feed: listeners are called in the committing task, right after the commit."""

    def __init__(self, max_age: float = 1.0) -> None:
        super().__init__()
        self.max_age = max_age

    async def start(self) -> None:
        return None  # nothing to hear: no other process tells this feed anything

    async def close(self) -> None:
        return None

    def stage(self, session: Any, changes: Collection[Change]) -> None:
        return None  # nothing leaves this process
