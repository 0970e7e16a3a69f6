#!/usr/bin/env python3
"""Idle, slow-header and partial-body connections against `creditmeter run`: how many stay open, and RSS.

Opens N connections of each kind to the API: idle (nothing sent), slow-header (half a request head),
and partial-body (an unauthenticated `POST /v1/clients` announcing 10 MB, then 64 KiB of it). Prints
the daemon's RSS and how many of the connections the server still holds open, right after opening
them and again after `read_timeout_seconds` (10 by default) has passed, and whether a normal request
is still answered.

Usage: bench/slow_clients.py [--bin PATH] [--each N] [--wait SECONDS]
Needs an open-files limit above 3*N for itself and the daemon (`ulimit -n 8192` first).
"""
import argparse, os, select, socket, subprocess, tempfile, time, urllib.request

def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

def still_open(socks):
    """Connections the server has not closed: answers read and dropped until EOF or nothing is ready."""
    n = 0
    for s in socks:
        p = select.poll()
        p.register(s, select.POLLIN)
        while True:
            if not p.poll(0):
                n += 1
                break
            try:
                if not s.recv(65536):
                    break
            except OSError:
                break
    return n

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=".build/release/creditmeter")
    ap.add_argument("--each", type=int, default=1000)
    ap.add_argument("--wait", type=float, default=12.0)
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    d = tempfile.mkdtemp(prefix="cm-slow-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(os.path.join(d, "rates.csv"), "w") as f:
        f.write("prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment\n*,0.01,0,1,1\n")
    with open(os.path.join(d, "admin.token"), "w") as f:
        f.write("bench-admin-token-0123456789abcdef\n")
    cfg = os.path.join(d, "c.toml")
    with open(cfg, "w") as f:
        f.write(f'[store]\npath = "s.db"\n[[plan]]\nname = "default"\nrates = "rates.csv"\n'
                f'[api]\nlisten = "127.0.0.1:{port}"\nadmin_token_file = "admin.token"\n')
    daemon = subprocess.Popen([binary, "run", "--config", cfg], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    def healthy():
        try:
            return urllib.request.urlopen(base + "/healthz", timeout=5).status == 200
        except Exception:
            return False
    try:
        deadline = time.time() + 30
        while not healthy():
            if time.time() > deadline:
                raise SystemExit("the API never answered")
            time.sleep(0.05)
        print(f"RSS before: {rss_mib(daemon.pid):.1f} MiB")
        body = b"a" * 65536
        socks = {"idle": [], "slow-header": [], "partial-body": []}
        for _ in range(a.each):
            for kind in socks:
                s = socket.create_connection(("127.0.0.1", port))
                if kind == "slow-header":
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                elif kind == "partial-body":
                    s.setblocking(False)
                    try:
                        s.send(b"POST /v1/clients HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 10485760\r\n\r\n" + body)
                    except BlockingIOError:
                        pass
                socks[kind].append(s)
        time.sleep(1)
        def report(label):
            counts = ", ".join(f"{k} {still_open(v)}/{len(v)}" for k, v in socks.items())
            print(f"{label}: RSS {rss_mib(daemon.pid):.1f} MiB; still open: {counts}; /healthz answers: {healthy()}")
        report("after opening")
        time.sleep(a.wait)
        report(f"{a.wait:.0f} s later")
    finally:
        daemon.terminate()
        try:
            daemon.wait(10)
        except subprocess.TimeoutExpired:  # a server holding thousands of connections may not drain
            daemon.kill()
            daemon.wait()

if __name__ == "__main__":
    main()
