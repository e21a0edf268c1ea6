"""ASGI entry point for running hubkit's web app under ``uvicorn --workers N`` in the benchmark.

Each worker process builds its own Hub in the ASGI lifespan (settings from env ``HUBKIT_BENCH_SETTINGS``),
which is how the app scales past one core: all state is in the database.
"""

from __future__ import annotations

import json
import os
from typing import Any


class LazyHubApp:
    def __init__(self) -> None:
        self.hub: Any = None
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    from hubkit.config.models import Settings
                    from hubkit.runtime.app import create_app
                    from hubkit.runtime.hub import Hub

                    settings = Settings.model_validate(json.loads(os.environ["HUBKIT_BENCH_SETTINGS"]))
                    self.hub = await Hub.create(settings, load_entry_points=False)
                    await self.hub.start()
                    self.app = create_app(self.hub)
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    if self.hub is not None:
                        await self.hub.stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self.app(scope, receive, send)


app = LazyHubApp()
