"""A multi-threaded HTTP server; prints its port."""
import http.server
import json
import socketserver


def price(n):
    return {"n": n, "total": sum(range(n)) * 1.1}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(price(len(self.path) * 10)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
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
