#!/usr/bin/python3
"""A WebSocket peer for test_gateway_websocket (python3-websockets, a real
implementation on both ends of the gateway).

  ws_peer.py serve          echo server on 127.0.0.1:0; prints its port;
                            /refuse answers 403 "no upgrade here"
  ws_peer.py client URL     text, a 256 KiB binary message and 100 small ones
                            through URL, each echo checked; exit 0 when all match
"""
import asyncio
import http
import os
import sys

import websockets


async def echo(ws, path=None):
    async for msg in ws:
        await ws.send(msg)


def refuse(path, headers):
    if path.startswith("/refuse"):
        return (http.HTTPStatus.FORBIDDEN, [("X-Why", "refused")], b"no upgrade here")
    return None


async def serve():
    async with websockets.serve(echo, "127.0.0.1", 0, process_request=refuse,
                                max_size=None) as srv:
        port = srv.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.Future()


async def client(url):
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send("hello through the gateway")
        assert await ws.recv() == "hello through the gateway"
        big = os.urandom(256 * 1024)
        await ws.send(big)
        assert await ws.recv() == big
        for i in range(100):
            await ws.send("msg %d" % i)
        for i in range(100):
            assert await ws.recv() == "msg %d" % i
        await ws.ping()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(serve())
    else:
        asyncio.run(client(sys.argv[2]))
