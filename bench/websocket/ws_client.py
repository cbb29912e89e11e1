#!/usr/bin/python3
"""bench/websocket/ws_client.py URL SIZE CONC OPS: the python3-websockets client doing the same
echo round trips as ws.lua (asyncio, one connection per task); prints "ops=N elapsed=S cpu=S"."""
import asyncio
import resource
import sys
import time

import websockets


async def main(url, size, conc, ops):
    msg = b"m" * size
    per = ops // conc
    conns = [await websockets.connect(url, compression=None, max_size=size + 1,
                                      ping_interval=None) for _ in range(conc)]

    async def worker(ws):
        for _ in range(per):
            await ws.send(msg)
            data = await ws.recv()
            assert len(data) == size

    def cpu():
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime
    c0, t0 = cpu(), time.monotonic()
    await asyncio.gather(*(worker(ws) for ws in conns))
    elapsed, used = time.monotonic() - t0, cpu() - c0
    for ws in conns:
        await ws.close()
    print(f"ops={per * conc} elapsed={elapsed:.6f} cpu={used:.3f}")


if __name__ == "__main__":
    url, size, conc, ops = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    asyncio.run(main(url, size, conc, ops))
