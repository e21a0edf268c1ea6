"""Websocket echo backend for the benchmark (websockets on uvloop). Usage: ws_echo.py PORT"""

from __future__ import annotations

import asyncio
import sys

import uvloop
from websockets.asyncio.server import ServerConnection, serve


async def echo(ws: ServerConnection) -> None:
    async for msg in ws:
        await ws.send(msg)


async def main(port: int) -> None:
    # backlog: a proxy opens 200 upstream connections in one burst; the default 100 would drop SYNs (1 s retry)
    async with serve(echo, "127.0.0.1", port, compression=None, max_queue=None, backlog=1024):
        await asyncio.Future()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
