"""A TCP proxy on loopback that holds each chunk a client sends for DELAY_MS
before passing it upstream: every request then costs a round trip, as to a
remote object store. Not used by the tests; it measures the read-ahead:

    rclone serve webdav data --addr 127.0.0.1:45200 --read-only &
    python3 tests/remote/latency_proxy.py 45201 45200 25 &
    quarry tpch bench --sf 1 --data http://127.0.0.1:45201/tpch-sf1 --engines quarry --runs 1

    usage: latency_proxy.py LISTEN_PORT UPSTREAM_PORT DELAY_MS
"""
import asyncio
import sys

LISTEN, UPSTREAM, DELAY = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000

async def pipe(reader, writer, delay):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if delay:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()

async def handle(cr, cw):
    ur, uw = await asyncio.open_connection("127.0.0.1", UPSTREAM)
    await asyncio.gather(pipe(cr, uw, DELAY), pipe(ur, cw, 0))

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    async with server:
        await server.serve_forever()

asyncio.run(main())
