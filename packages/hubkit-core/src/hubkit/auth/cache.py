"""Callers remembered: the :class:`~hubkit.auth.identity.Identity` behind a token or a login session, with its
scopes worked out, built from the database once and reused until something it was built from changes.

Correctness comes first, so an entry is used only while all of these hold:

* no change notice (:mod:`hubkit.storage.changes`) has named anything it was built from: its token, its user
  (by id or name: admin flag, name, ``cookie_id``, group membership, deletion), its service (or any service,
  for a token whose scopes come from the services' access policies), its server (a server token's scopes name
  the server), or any group. Notices arrive right after the commit that changed
  the row, before that request answers, so the next request sees the change;
* it is younger than the feed's ``max_age`` (writes the feed cannot see: another process on the database, unless
  the feed hears other processes as the PostgreSQL one does, :mod:`hubkit.storage.pg_feed`);
* for a token, it has not expired (checked on every use, against the clock).

A lookup that was reading the database when a notice arrived may have read the rows from before the change;
:meth:`IdentityCache.put` is given the :attr:`~IdentityCache.epoch` read before the lookup began and stores
nothing if a notice came in between. The cache is bounded (least recently used entries go first) and holds
token hashes, never secrets.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..storage.changes import NOT_CACHED, Change, ChangeFeed

DEFAULT_SIZE = 20_000

Tag = tuple[str, int | str]
# built from every service's access policy (a token asking for access:services): any service change drops it
ANY_SERVICE: Tag = ("service", "*")


@dataclass
class Entry:
    identity: Any  # an auth.identity.Identity (frozen; shared by every request that uses the entry)
    tags: frozenset[Tag]  # what it was built from: ("token", id), ("user", id), ("user", name), ...
    expires_at: datetime | None = None
    last_used: datetime | None = None  # a token's last_activity as last written
    born: float = field(default_factory=time.monotonic)


class IdentityCache:
    def __init__(self, feed: ChangeFeed, *, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._feed = feed
        self.epoch = 0  # bumped by every notice; see put()
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._by_tag: dict[Tag, set[Hashable]] = {}
        self._unsubscribe = feed.subscribe(self._changed)

    @property
    def max_age(self) -> float:
        """The feed's, read on every use: a feed that lost its link to other processes trusts copies less."""
        return self._feed.max_age

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if time.monotonic() - entry.born > self.max_age:
            self.drop(key)
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: Hashable, entry: Entry, epoch: int) -> None:
        """Remember ``entry`` unless a change notice arrived since ``epoch`` was read."""
        if epoch != self.epoch:
            return
        self.drop(key)
        self._entries[key] = entry
        for tag in entry.tags:
            self._by_tag.setdefault(tag, set()).add(key)
        while len(self._entries) > self.size:
            self.drop(next(iter(self._entries)))

    def drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        for tag in entry.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]

    def clear(self) -> None:
        self._entries.clear()
        self._by_tag.clear()

    def _changed(self, changes: frozenset[Change]) -> None:
        if all(change.kind in NOT_CACHED for change in changes):
            return  # progress events, the admission queue: nothing here is built from them
        self.epoch += 1
        for change in changes:
            if change.kind in NOT_CACHED:
                continue
            if change.key is None or change.kind == "group":
                # every row of a kind, or a group (its members' identities list their groups): drop them all
                self.clear()
                return
            for key in list(self._by_tag.get((change.kind, change.key), ())):
                self.drop(key)
            if change.kind == "service":
                for key in list(self._by_tag.get(ANY_SERVICE, ())):
                    self.drop(key)

    def close(self) -> None:
        self._unsubscribe()
        self.clear()
