"""Per-pod mailboxes fed by the shared watches: a starting server waits on its own, a stopping one waits
for its pod to be gone. Nothing here polls the API."""

from __future__ import annotations

import asyncio
from typing import Any

Obj = dict[str, Any]


class PodMailbox:
    """What the watches saw about one pod name, in order: ("pod", type, obj) or ("event", type, obj)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.uid: str | None = None
        self.queue: asyncio.Queue[tuple[str, str, Obj]] = asyncio.Queue()


class Tracker:
    def __init__(self) -> None:
        self.mailboxes: dict[str, list[PodMailbox]] = {}
        self.gone: dict[str, list[asyncio.Future[None]]] = {}

    def open(self, name: str) -> PodMailbox:
        box = PodMailbox(name)
        self.mailboxes.setdefault(name, []).append(box)
        return box

    def close(self, box: PodMailbox) -> None:
        boxes = self.mailboxes.get(box.name, [])
        if box in boxes:
            boxes.remove(box)
        if not boxes:
            self.mailboxes.pop(box.name, None)

    def on_pod(self, etype: str, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        for box in self.mailboxes.get(name, ()):
            box.queue.put_nowait(("pod", etype, pod))
        if etype == "DELETED":
            for fut in self.gone.pop(name, ()):
                if not fut.done():
                    fut.set_result(None)

    def on_event(self, etype: str, event: Obj) -> None:
        if etype == "DELETED":
            return
        involved = event.get("involvedObject") or {}
        if involved.get("kind") != "Pod":
            return
        for box in self.mailboxes.get(involved.get("name", ""), ()):
            box.queue.put_nowait(("event", etype, event))

    def wait_gone(self, name: str) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.gone.setdefault(name, []).append(fut)
        return fut
