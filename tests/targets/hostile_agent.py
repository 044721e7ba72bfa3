"""A process whose user plays a hostile agent at lu's socket; prints "ready".

It listens where lu looks for this process's agent (/tmp/lu-UID/agent-PID.sock),
speaks lu's framing, and answers as its mode says:

  watch FILE...  watch_start names FILE... (files the user wants root to send)
  nested         every reply nests a list 100,000 deep
  noaccept       listens but never accepts (a busy agent)
  impostor       greets with another process's start time
  forked         forks a child and links the child's socket name to its own
                 listener (prints "ready CHILD_PID"), as an agent inherited
                 across fork would look

Every request it receives is appended to /tmp/lu-UID/received.jsonl, so a test
can see what root sent. Standard library only; runs as any user.
"""
import json
import os
import socket
import struct
import sys
import threading
import time

mode = sys.argv[1]
uid = os.geteuid()
home = "/tmp/lu-%d" % uid
os.makedirs(home, 0o700, exist_ok=True)
os.chmod(home, 0o700)
path = os.path.join(home, "agent-%d.sock" % os.getpid())
received = os.path.join(home, "received.jsonl")
with open("/proc/self/stat") as handle:
    ticks = int(handle.read().rsplit(")", 1)[1].split()[19])


def send(conn, message):
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    conn.sendall(struct.pack(">I", len(body)) + body)


def recv(conn):
    header = b""
    while len(header) < 4:
        chunk = conn.recv(4 - len(header))
        if not chunk:
            raise EOFError
        header += chunk
    size = struct.unpack(">I", header)[0]
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise EOFError
        body += chunk
    return json.loads(body)


def serve(conn):
    try:
        send(conn, {"v": 2, "hello": {"pid": os.getpid(), "uid": uid, "agent_version": "0.1.0", "python": "3",
                                      "start_ticks": ticks + 12345 if mode == "impostor" else ticks}})
        while True:
            request = recv(conn)
            with open(received, "a") as handle:
                handle.write(json.dumps(request) + "\n")
            if mode == "nested":
                send(conn, b'{"v": 2, "id": %d, "ok": true, "result": ' % request["id"]
                     + b"[" * 100000 + b"]" * 100000 + b"}")
                continue
            result = None
            if request["op"] == "watch_start":
                files = [{"path": f, "file": f, "modules": ["m"]} for f in sys.argv[2:]]
                result = {"files": files, "missing": []}
            elif request["op"] == "watch_apply":
                result = {"id": 1, "lines": ["applied"], "notes": [], "reverted": False}
            elif request["op"] == "watch_prepare":
                result = True
            elif request["op"] in ("ls", "info"):
                result = [] if request["op"] == "ls" else {"pid": os.getpid()}
            send(conn, {"v": 2, "id": request["id"], "ok": True, "result": result})
    except (EOFError, OSError, ValueError):
        pass
    finally:
        conn.close()


listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
if os.path.exists(path):
    os.unlink(path)
listener.bind(path)
os.chmod(path, 0o600)
listener.listen(0 if mode == "noaccept" else 16)
if mode == "forked":
    child = os.fork()
    if child == 0:
        time.sleep(3600)
        os._exit(0)
    os.link(path, os.path.join(home, "agent-%d.sock" % child))
    print("ready", child, flush=True)
else:
    print("ready", flush=True)
if mode == "noaccept":
    time.sleep(3600)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
