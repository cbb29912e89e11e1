#!/usr/bin/python3
"""A python3-websockets peer with test behaviours, chosen by the request path.

Usage: ws_peer.py (--port N | --unix PATH) [--deflate SPEC] [--cert CRT --key KEY [--client-ca CA]]
  SPEC: "off" (no permessage-deflate), "default", or comma-separated
        server_no_context_takeover / client_no_context_takeover / server_bits=N / client_bits=N
Paths:
  /echo       echoes each message with its type
  /frag       sends "hello, " "fragmented " "world" as one fragmented text message, then echoes
  /close      closes with 4001 "bye"
  /headers    sends the request headers back as one text message (name: value lines)
  /ping       pings with "p1", waits for the pong (5 s), sends "pong ok", then echoes
  /ext        sends the negotiated Sec-WebSocket-Extensions response header, then echoes
  /peercert   sends the TLS client certificate's subject CN ("none" without one), then echoes
With --cert/--key it serves TLS (wss://); --client-ca makes a client certificate required.
Prints "ready" once listening; stops on SIGTERM.
"""
import argparse
import asyncio
import signal
import ssl

import websockets
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory


async def handler(ws, path):
    try:
        if path == "/frag":
            await ws.send(iter(["hello, ", "fragmented ", "world"]))
        elif path == "/close":
            await ws.close(4001, "bye")
            return
        elif path == "/headers":
            await ws.send("\n".join(f"{k.lower()}: {v}" for k, v in ws.request_headers.raw_items()))
        elif path == "/ping":
            await asyncio.wait_for(await ws.ping(b"p1"), 5)
            await ws.send("pong ok")
        elif path == "/ext":
            await ws.send(ws.response_headers.get("Sec-WebSocket-Extensions", "none"))
        elif path == "/peercert":
            cert = ws.transport.get_extra_info("peercert") or {}
            cn = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
            await ws.send(cn[0] if cn else "none")
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


def extensions(spec):
    if spec == "default":
        return {}
    if spec == "off":
        return {"compression": None}
    kw = {}
    for item in spec.split(","):
        if item in ("server_no_context_takeover", "client_no_context_takeover"):
            kw[item] = True
        elif item.startswith("server_bits="):
            kw["server_max_window_bits"] = int(item.split("=")[1])
        elif item.startswith("client_bits="):
            kw["client_max_window_bits"] = int(item.split("=")[1])
    return {"compression": None, "extensions": [ServerPerMessageDeflateFactory(**kw)]}


async def main(args):
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    kw = dict(max_size=2**24, ping_interval=None, subprotocols=["chat", "echo"],
              **extensions(args.deflate))
    if args.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.cert, args.key)
        if args.client_ca:
            tls.verify_mode = ssl.CERT_REQUIRED
            tls.load_verify_locations(args.client_ca)
        kw["ssl"] = tls
    if args.unix:
        server = websockets.unix_serve(handler, args.unix, **kw)
    else:
        server = websockets.serve(handler, "127.0.0.1", args.port, **kw)
    async with server:
        print("ready", flush=True)
        await stop


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int)
    p.add_argument("--unix")
    p.add_argument("--deflate", default="default")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--client-ca")
    asyncio.run(main(p.parse_args()))
