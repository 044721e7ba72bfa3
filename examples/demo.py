"""The demo behind `./dev demo`: a live service, attached to and profiled without a restart.

It starts examples/shop_service.py (which knows nothing of lu), sends it
requests from a background thread, and runs the real `lu` commands against it
while it serves: ps, inject, profile, debug, patch (the service's price bug is
fixed live), revert, report with a flame graph, and detach. No request may fail.
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "out")


def lu(*args, show=True, limit=25):
    command = ["lu"] + [str(a) for a in args]
    print("\n$ " + " ".join(command), flush=True)
    result = subprocess.run([sys.executable, "-m", "lu_cli.main"] + [str(a) for a in args],
                            capture_output=True, text=True)
    if show:
        lines = (result.stdout + result.stderr).rstrip().splitlines()
        for line in lines[:limit]:
            print("  " + line)
        if len(lines) > limit:
            print("  ... (%d more lines)" % (len(lines) - limit))
    if result.returncode != 0:
        raise SystemExit("demo: `%s` failed" % " ".join(command))
    return result.stdout


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as response:
        return json.loads(response.read())


def main():
    os.makedirs(OUT, exist_ok=True)
    service = subprocess.Popen([sys.executable, os.path.join(HERE, "shop_service.py"), "--port", "0"],
                               stdout=subprocess.PIPE, text=True)
    banner = service.stdout.readline().strip()
    port = int(banner.rsplit(":", 1)[1].split("/")[0])
    print("started: " + banner)
    served, failed = [0], []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                get(port, "/price?item=apple&qty=12")
                get(port, "/cart?apple=3&melon=1&pear=5")
                served[0] += 2
            except Exception as exc:
                failed.append(repr(exc))
            time.sleep(0.005)

    threading.Thread(target=load, daemon=True).start()
    try:
        time.sleep(0.5)
        pid = service.pid
        lu("ps")
        lu("inject", pid)
        lu("profile", pid, "shoplib.**", "__main__.Handler.do_GET", "--duration", 3)
        lu("debug", pid, "shoplib.price", "--duration", 0.2, limit=8)
        print("\nbefore the fix: 12 apples cost %s" % get(port, "/price?item=apple&qty=12")["price"])
        lu("patch", pid, os.path.join(HERE, "patches", "fix_price.py"))
        print("after the fix:  12 apples cost %s" % get(port, "/price?item=apple&qty=12")["price"])
        lu("ls", pid)
        lu("profile", pid, "shoplib.**", "--log-dir", OUT, show=False)
        time.sleep(2.5)
        lu("revert", pid, "--all")
        print("reverted:       12 apples cost %s" % get(port, "/price?item=apple&qty=12")["price"])
        svg = os.path.join(OUT, "demo-flamegraph.svg")
        lu("report", os.path.join(OUT, "lu-%d.jsonl" % pid), "--flamegraph", svg, limit=12)
        lu("sample", pid, "--duration", 1, limit=12)
        lu("detach", pid)
        print("\nthe service answered %d requests meanwhile, %d failed; flame graph: %s"
              % (served[0], len(failed), svg))
        if failed:
            raise SystemExit("demo: requests failed: %s" % failed[:3])
    finally:
        stop.set()
        service.terminate()
        service.wait(10)


if __name__ == "__main__":
    main()
