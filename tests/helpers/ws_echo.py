#!/usr/bin/python3
"""WebSocket echo peer for the cosocket tests (Debian python3-websockets).

Usage: ws_echo.py PORT [--host HOST] [--cert CERT --key KEY]

Echoes every message back with the same type (text -> text, binary ->
binary), answers pings, accepts the subprotocols "chat" and "echo", takes
messages up to 16 MiB, and echoes the client's close code. Prints "ready"
on stdout once listening. Stops cleanly on SIGTERM/SIGINT.
"""
import argparse
import asyncio
import signal
import ssl

import websockets


async def echo(ws, path=None):  # websockets 10.x calls handler(ws, path); 11+ handler(ws)
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def main(args):
    tls = None
    if args.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.cert, args.key)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with websockets.serve(echo, args.host, args.port, ssl=tls, max_size=2**24,
                                ping_interval=None, subprotocols=["chat", "echo"]):
        print("ready", flush=True)
        await stop


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("port", type=int)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--cert")
    p.add_argument("--key")
    asyncio.run(main(p.parse_args()))
