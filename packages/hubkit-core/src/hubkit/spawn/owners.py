"""Who may drive spawns: this process's identity as the owner of the starts and stops it runs, and whether another
owner still lives (see :mod:`.ownership`)."""

from __future__ import annotations

import os
import random
import socket
from typing import Protocol


class Owners(Protocol):
    """This process's identity as an owner, and the liveness of the others'."""

    @property
    def instance(self) -> str: ...

    @property
    def shared(self) -> bool:
        """Other processes may drive spawns on this database at the same time."""
        ...

    async def ready(self) -> str:
        """This process's instance name, once it can be recorded (a lease taken)."""
        ...

    async def owner_alive(self, owner: str | None) -> bool: ...


def instance_name(key: int) -> str:
    """``<key>@<host>:<pid>``: the lease key first, so an owner's lease can be found from the recorded name."""
    return f"{key}@{socket.gethostname()[:32]}:{os.getpid()}"


class SoleOwner:
    """The only hub process (SQLite): an owner other than itself is a process that ended."""

    shared = False

    def __init__(self) -> None:
        self.instance = instance_name(random.randint(1, 2**31 - 1))

    async def ready(self) -> str:
        return self.instance

    async def owner_alive(self, owner: str | None) -> bool:
        return owner == self.instance


class OwnershipLost(Exception):
    """A spawn's write found its server row owned by another process: that replica took the spawn over (this
    process's lease had ended), so this one leaves the row alone."""
