"""The agent survives garbage, oversized and vanishing clients, serves several at once, and admits only its user."""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import subprocess
from pathlib import Path

import pytest
from conftest import SYSTEM_PYTHON, concurrently, nobody_pythonpath, run_lu
from interpreters import ALL

from lu_attach.client import AgentClient
from lu_payloads import paths, protocol

# One interpreter per family is enough for the wire protocol (it is the same code everywhere),
# but run the whole set: it is cheap.


@pytest.fixture
def agent(start_target, request):
    python = request.param
    target = start_target(python, "sleeper.py")
    result = run_lu("inject", target.pid)
    assert result.returncode == 0, result.stderr
    return target, paths.socket_path(target.pid, os.getuid(), "/proc/%d/root" % target.pid)


def raw_connect(path):
    """A bare connection, past the agent's hello."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    assert "hello" in protocol.recv(sock)
    return sock


V = protocol.PROTOCOL_VERSION


@pytest.mark.parametrize("agent", ALL, indirect=True)
def test_garbage_oversized_and_vanishing_clients(agent):
    target, path = agent
    # Garbage bytes that happen to form a frame of non-JSON.
    sock = raw_connect(path)
    sock.sendall(struct.pack(">I", 11) + b"not json!!!")
    reply = protocol.recv(sock)
    assert reply["ok"] is False and "malformed" in reply["error"]
    # The same connection still works afterwards.
    protocol.send(sock, {"v": V, "id": 7, "op": "ping"})
    assert protocol.recv(sock)["id"] == 7
    # Unknown op, wrong protocol version, bad args.
    protocol.send(sock, {"v": V, "id": 8, "op": "no-such-op"})
    assert "unknown request" in protocol.recv(sock)["error"]
    protocol.send(sock, {"v": 99, "id": 9, "op": "ping"})
    assert "protocol version" in protocol.recv(sock)["error"]
    protocol.send(sock, {"v": V, "id": 10, "op": "ping", "args": {"bogus": 1}})
    assert "bad arguments" in protocol.recv(sock)["error"]
    sock.close()
    # An oversized frame is refused with an error reply, then the connection closes.
    sock = raw_connect(path)
    sock.sendall(struct.pack(">I", protocol.MAX_FRAME + 1))
    reply = protocol.recv(sock)
    assert reply["ok"] is False and "exceeds" in reply["error"]
    assert sock.recv(1) == b""
    sock.close()
    # Random binary garbage, and clients that vanish mid-message.
    for payload in (os.urandom(3), struct.pack(">I", 1000) + b"{\"v\":", os.urandom(4096)):
        sock = raw_connect(path)
        sock.sendall(payload)
        sock.close()
    # Still serving.
    with AgentClient(path) as client:
        assert client.request("exec", source="2+3")["output"].strip() == "5"
    assert target.alive()


@pytest.mark.parametrize("agent", ALL[-1:], indirect=True)
def test_several_clients_at_once(agent):
    target, path = agent

    def worker(n: int) -> None:
        with AgentClient(path) as client:
            for i in range(20):
                out = client.request("exec", source="print(%d * %d)" % (n, i))
                assert out["output"].strip() == str(n * i), out

    errors = concurrently(6, worker)
    assert not errors, errors
    assert target.alive()


def _connect_as(uid, path):
    """Connect to path as another uid in a child process; return what the agent said (or the OS error)."""
    code = (
        "import os, socket, sys, json\n"
        "os.setgroups([]); os.setgid(%d); os.setuid(%d)\n"
        "from lu_payloads import protocol\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    s.connect(%r)\n"
        "except OSError as e:\n"
        "    print(json.dumps({'os_error': e.strerror})); sys.exit()\n"
        "try:\n"
        "    protocol.send(s, {'v': protocol.PROTOCOL_VERSION, 'id': 1, 'op': 'exec', 'args': {'source': 'print(1)'}})\n"
        "except OSError:\n"
        "    pass  # the agent may have refused and closed already\n"
        "try:\n"
        "    m = protocol.recv(s)\n"
        "    if 'hello' in m: m = protocol.recv(s)\n"
        "    print(json.dumps(m))\n"
        "except Exception as e:\n"
        "    print(json.dumps({'closed': repr(e)}))\n" % (uid, uid, path)
    )
    out = subprocess.run(
        [SYSTEM_PYTHON, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, PYTHONPATH=nobody_pythonpath()),
    )
    assert out.stdout, out.stderr
    return json.loads(out.stdout)


@pytest.mark.xdist_group("nobody-runtime-dir")
@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as other users")
def test_other_users_are_refused(start_target):
    """A target of `nobody`: its agent admits nobody and root, refuses a third user, and logs it.

    The target runs as `nobody` so that this test can open up that user's
    runtime directory without touching the one other tests' agents use.
    """
    target = start_target(SYSTEM_PYTHON, "sleeper.py", user="nobody")
    assert run_lu("inject", target.pid).returncode == 0
    path = paths.socket_path(target.pid, 65534)
    directory = os.path.dirname(path)
    # The private directory alone keeps other users out.
    assert os.stat(directory).st_uid == 65534
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert _connect_as(4242, path).get("os_error") == "Permission denied"
    # The owner and root get in.
    assert _connect_as(65534, path).get("ok") is True
    with AgentClient(path) as client:
        assert client.request("exec", source="print(7)")["output"] == "7\n"
    # Even if the directory were opened up by mistake, the credential check refuses the peer.
    os.chmod(directory, 0o711)
    os.chmod(path, 0o666)
    try:
        result = _connect_as(4242, path)
    finally:
        os.chmod(directory, 0o700)
        os.chmod(path, 0o600)
    assert result.get("ok") is False and "permission denied" in result.get("error", ""), result
    log = Path(os.path.join(directory, "agent-%d.log" % target.pid)).read_text()
    assert "refused a connection" in log and "uid 4242" in log
    # lu itself, run by another user, gets a one-line error.
    denied = run_lu("ls", target.pid, user="nobody")
    assert denied.returncode == 0  # nobody owns this target: allowed
    assert run_lu("detach", target.pid).returncode == 0
