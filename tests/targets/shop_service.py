"""A threaded HTTP shop service built on shoplib; prints "ready PORT".

GET /all answers one JSON object with the result of every kind of function in
shoplib; a handler that fails answers 500 with the traceback.
"""
import asyncio
import http.server
import json
import socketserver
import traceback

import shoplib
from shoplib import (
    checkout,
    price,  # imported by name before any patch
)


def snapshot():
    cart = shoplib.Cart().add(1).add(2)
    cart.discount = 1
    return {
        "price": shoplib.price(3),
        "imported": price(3),
        "checkout": checkout.checkout(3),
        "keep": checkout.keep(3),
        "total": cart.total(),
        "of": shoplib.Cart.of(1, 1).total(),
        "fmt": shoplib.Cart.fmt(2),
        "discount": cart.discount,
        "describe": cart.describe(),
        "rebate": shoplib.rebate(100),
        "items": list(shoplib.items(3)),
        "async": asyncio.run(shoplib.fetch_price(2)),
        "rounder": shoplib.rounder(1.23456),
        "quote": shoplib.quote(2),
        "made": shoplib.made(2),
    }


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            status, body = 200, json.dumps(snapshot()).encode()
        except Exception:
            status, body = 500, traceback.format_exc().encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


server = Server(("127.0.0.1", 0), Handler)
print("ready %d" % server.server_address[1], flush=True)
server.serve_forever()
