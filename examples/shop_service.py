"""A small threaded HTTP shop service to try lu on.

    python examples/shop_service.py [--port N]      # prints its pid and port

    curl 'http://127.0.0.1:PORT/price?item=apple&qty=12'
    curl 'http://127.0.0.1:PORT/cart?apple=3&melon=1'
"""
import argparse
import http.server
import json
import os
import socketserver
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoplib
from shoplib import Cart, price


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        try:
            if url.path == "/price":
                item, qty = query.get("item", "apple"), int(query.get("qty", "1"))
                answer = {"item": item, "qty": qty, "price": price(item, qty)}
            elif url.path == "/cart":
                cart = Cart()
                for item, qty in query.items():
                    cart.add(item, int(qty))
                answer = {"lines": cart.lines, "total": cart.total()}
            else:
                answer = {"error": "try /price?item=apple&qty=12 or /cart?apple=3&melon=1",
                          "items": sorted(shoplib.PRICES)}
            status = 200 if "error" not in answer else 404
        except (KeyError, ValueError) as exc:
            answer, status = {"error": "bad request: %s" % exc}, 400
        body = (json.dumps(answer) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    print("shop service: pid %d, http://127.0.0.1:%d/price?item=apple&qty=12"
          % (os.getpid(), server.server_address[1]), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
