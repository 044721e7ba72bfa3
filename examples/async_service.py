"""An asyncio TCP quote service: send "ITEM QTY" lines, get a price back per line.

    python examples/async_service.py [--port N]     # prints its pid and port
    python3 -c "import socket; s = socket.create_connection(('127.0.0.1', PORT)); \
s.sendall(b'melon 3\\n'); print(s.recv(100).decode())"

Coroutines are changed in place like functions: try
    lu debug PID __main__.quote          or          lu patch PID my_fix.py
"""
import argparse
import asyncio
import os

PRICES = {"apple": 0.5, "pear": 0.75, "melon": 3.0}


async def lookup(item):
    await asyncio.sleep(0.001)  # pretend to ask a database
    return PRICES[item]


async def quote(item, qty):
    return round(await lookup(item) * qty, 2)


async def handle(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            try:
                item, qty = line.decode().split()
                answer = "%s %s %s\n" % (item, qty, await quote(item, int(qty)))
            except (KeyError, ValueError):
                answer = "error: send ITEM QTY, items: %s\n" % " ".join(sorted(PRICES))
            writer.write(answer.encode())
            await writer.drain()
    finally:
        writer.close()


async def serve(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("async service: pid %d, port %d" % (os.getpid(), server.sockets[0].getsockname()[1]), flush=True)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
