#!/usr/bin/env python3
"""A TCP proxy that adds a fixed delay to every request/response exchange, to see what a
remote store's round trips cost (DynamoDB on AWS answers in ~5 ms; moto on loopback in
well under 1 ms).

  latency_proxy.py LISTEN_PORT TARGET_HOST TARGET_PORT [DELAY_MS=5]

Bytes pass through unchanged. The first bytes of each answer are held back DELAY_MS after
the client's request was sent, once per exchange: so one HTTP request costs DELAY_MS
however many segments it takes, and keep-alive connections pay it per request, as a
network round trip would. Counts exchanges and prints the total on SIGTERM/SIGINT.
Loopback only.
"""
import asyncio
import signal
import sys

LISTEN, HOST, PORT = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
DELAY = (float(sys.argv[4]) if len(sys.argv) > 4 else 5.0) / 1000.0
exchanges = 0


async def serve(client_reader, client_writer):
    global exchanges
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(HOST, PORT)
    except OSError:
        client_writer.close()
        return
    loop = asyncio.get_running_loop()
    # When the latest request started; None while no request awaits its answer.
    state = {"sent_at": None}

    async def upstream():
        try:
            while data := await client_reader.read(65536):
                if state["sent_at"] is None:
                    state["sent_at"] = loop.time()
                upstream_writer.write(data)
                await upstream_writer.drain()
        finally:
            upstream_writer.close()

    async def downstream():
        global exchanges
        try:
            while data := await upstream_reader.read(65536):
                sent_at = state["sent_at"]
                if sent_at is not None:
                    state["sent_at"] = None
                    exchanges += 1
                    wait = sent_at + DELAY - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                client_writer.write(data)
                await client_writer.drain()
        finally:
            client_writer.close()

    await asyncio.gather(upstream(), downstream(), return_exceptions=True)


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", LISTEN, backlog=512)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    print(f"latency_proxy: {exchanges} exchanges delayed {DELAY * 1000:.1f} ms", flush=True)


asyncio.run(main())
