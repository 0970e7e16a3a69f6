#!/usr/bin/env python3
"""Server time of the console's Clients page with many clients.

    bench/console.py [CLIENTS] [REQUESTS]        defaults: 10000 clients, 50 requests per page

Starts `creditmeter run` on a scratch store on 127.0.0.1, creates one client through the CLI (so its
password hash is the real one), copies that row CLIENTS-1 times with SQLite (hashing 10,000
passwords would take minutes and is not what is measured), recharges and charges them to spread the
levels, signs in to /console/ with the admin token, then times each page REQUESTS times over one
kept-alive connection: the first page, a page deep in the list, a search by name, a search by email
that matches one client, and the live-meter JSON. "Server time" is from the request's last byte
sent to the answer's first byte received (loopback adds a few µs). Prints median, p95 and max in ms.

Env: CREDITMETER_BIN (default .build/release/creditmeter), KEEP=1 keeps the scratch directory.
"""
import http.client
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("CREDITMETER_BIN", os.path.join(ROOT, ".build/release/creditmeter"))
CLIENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
REQUESTS = int(sys.argv[2]) if len(sys.argv) > 2 else 50


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit("no binary at %s: swift build -c release --product creditmeter (or set CREDITMETER_BIN)" % BIN)
    d = tempfile.mkdtemp(prefix="cm-bench-console.")
    proc = None
    try:
        port = free_port()
        token = os.urandom(16).hex()
        with open(os.path.join(d, "admin.token"), "w") as f:
            f.write(token + "\n")
        os.chmod(os.path.join(d, "admin.token"), 0o600)
        with open(os.path.join(d, "rates.csv"), "w") as f:
            f.write("prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment\n*,0.05,0,60,60\n")
        cfg = os.path.join(d, "creditmeter.toml")
        with open(cfg, "w") as f:
            f.write('[store]\npath = "%s/store.db"\n\n[[plan]]\nname = "default"\nrates = "%s/rates.csv"\n\n'
                    '[api]\nlisten = "127.0.0.1:%d"\nadmin_token_file = "%s/admin.token"\n' % (d, d, port, d))
        subprocess.run([BIN, "clients", "create", "--config", cfg, "--username", "c00000", "--first-name", "Bench",
                        "--last-name", "Client 0", "--email", "c00000@example.com", "--password-stdin"],
                       input=b"Bench#Pass1\nBench#Pass1\n", check=True, stdout=subprocess.DEVNULL)
        db = sqlite3.connect(os.path.join(d, "store.db"))
        h, created = db.execute("SELECT password_hash, created_at FROM clients WHERE username = 'c00000'").fetchone()
        rows = []
        for i in range(1, CLIENTS):
            assigned = (i % 7) * 10_000_000
            used = assigned * (i % 5) // 4
            rows.append(("c%05d" % i, "c%05d@example.com" % i, "Bench", "Client %d" % i, "Company %d" % (i % 100), h,
                         assigned, used, created, created))
        db.executemany("INSERT INTO clients (username, email, first_name, last_name, company, password_hash, assigned, used,"
                       " level, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,'ok',?,?)", rows)
        db.execute("INSERT INTO accounts (code, client_id) SELECT username, id FROM clients WHERE username <> 'c00000'")
        db.commit()
        db.close()
        proc = subprocess.Popen([BIN, "run", "--config", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    sys.exit("the daemon did not start: %s" % proc.stderr.read().decode() if proc.stderr else "")
                time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("GET", "/console/")
        r = conn.getresponse()
        page = r.read().decode()
        pre = re.search(r"cm_signin=([0-9a-f]+)", r.getheader("Set-Cookie")).group(1)
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        body = urllib.parse.urlencode({"csrf": csrf, "token": token})
        conn.request("POST", "/console/signin", body, {"Cookie": "cm_signin=" + pre,
                                                       "Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        r.read()
        session = re.search(r"cm_console=([0-9a-f]+)", r.getheader("Set-Cookie")).group(1)
        cookie = {"Cookie": "cm_console=" + session}
        print("clients: %d, requests per page: %d, binary: %s" % (CLIENTS, REQUESTS, BIN))
        pages = [("first page", "/console/"), ("page 150 of 200", "/console/?page=150"),
                 ("search 'Client 99' (111 matches)", "/console/?q=Client+99"),
                 ("search by email (1 match)", "/console/?q=c04242%40example"),
                 ("live meters JSON, page 1", "/console/meters.json")]
        worst = 0.0
        for name, path in pages:
            times = []
            for _ in range(REQUESTS):
                conn.request("GET", path, headers=cookie)
                t0 = time.perf_counter()
                r = conn.getresponse()
                t1 = time.perf_counter()
                data = r.read()
                if r.status != 200:
                    sys.exit("%s: HTTP %d" % (path, r.status))
                times.append((t1 - t0) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            worst = max(worst, p95)
            print("%-34s median %6.2f ms   p95 %6.2f ms   max %6.2f ms   (%d bytes)"
                  % (name, statistics.median(times), p95, times[-1], len(data)))
        print("worst p95: %.2f ms (target <= 50 ms)" % worst)
        return 0 if worst <= 50 else 1
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        if os.environ.get("KEEP") == "1":
            print("kept", d, file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
