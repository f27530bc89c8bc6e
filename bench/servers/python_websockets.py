"""Python `websockets` echo server (Debian python3-websockets).

    python3 bench/servers/python_websockets.py [--deflate] [PORT]

--deflate accepts permessage-deflate offers (websockets' default settings).

Prints "listening on ws://127.0.0.1:PORT/" and serves until killed.
"""
import asyncio
import sys

import websockets


async def echo(ws, path=None):
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def main():
    deflate = len(sys.argv) > 1 and sys.argv[1] == "--deflate"
    port = int(sys.argv[-1]) if len(sys.argv) > 1 and sys.argv[-1].isdigit() else 0
    async with websockets.serve(echo, "127.0.0.1", port,
                                compression="deflate" if deflate else None,
                                max_size=None, ping_interval=None) as srv:
        port = srv.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}/", flush=True)
        await asyncio.Future()


asyncio.run(main())
