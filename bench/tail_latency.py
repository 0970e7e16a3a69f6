#!/usr/bin/env python3
"""Append-to-committed latency of `creditmeter run`, and its idle CPU.

Appends generated CDRs one at a time at a steady rate to a tailed Master.csv and, for each, polls the
store (SQLite, WAL: readers never block the daemon) until the read position committed together with the
line's charge covers it (every line moves it, billable or not). Prints the median
and p99 latency and the CPU the daemon used while idle for 10 s.

With --prefill N the store first gets N usage rows with random hash identities, charged over the months
before the appended calls (as a store that has metered a PBX for a while holds them), so the figure is
the one for a big store, not an empty one.

Usage: bench/tail_latency.py [--bin PATH] [--count N] [--rate PER_SECOND] [--prefill ROWS]
"""
import argparse, os, shutil, signal, sqlite3, statistics, subprocess, sys, tempfile, time

def prefill(path, rows):
    """N charges of client c0001, one every 2 s up to just before cdrgen's first call (2026-01-01)."""
    db = sqlite3.connect(path)
    cid = db.execute("SELECT id FROM clients WHERE username = 'c0001'").fetchone()[0]
    cols = [r[1] for r in db.execute("PRAGMA table_info(usage)")]
    first = 1_767_225_600 - 2 * rows - 3600
    key = ", start_key" if "start_key" in cols else ""
    keyval = ", ?2 + 2 * i" if key else ""
    db.execute("BEGIN")
    db.execute(f"""
        INSERT INTO usage (identity, client_id, account, source, position, line, destination, prefix, billsec,
                           charged_seconds, cost, started_at, charged_at{key})
        WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ?1 - 1)
        SELECT 'h:' || lower(hex(randomblob(16))), ?3, 'c0001', 'old', i * 300, i + 1, '4420' || (i % 1000000),
               '44', 60, 60, 1000, ?2 + 2 * i, ?2 + 2 * i + 70{keyval} FROM seq""", (rows, first, cid))
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=".build/release/creditmeter")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--prefill", type=int, default=0)
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    d = tempfile.mkdtemp(prefix="cm-lat-")
    cfg = os.path.join(d, "c.toml")
    with open(os.path.join(d, "rates.csv"), "w") as f:
        f.write("prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment\n*,0.01,0,1,1\n")
    with open(cfg, "w") as f:
        f.write('[store]\npath = "s.db"\n[[source]]\nname = "pbx"\npath = "Master.csv"\nformat = "asterisk-csv"\n'
                'timezone = "UTC"\nstart_at = "beginning"\n[[plan]]\nname = "default"\nrates = "rates.csv"\n')
    def cli(*args, stdin=None):
        subprocess.run([binary, *args, "--config", cfg], input=stdin, check=True, capture_output=True, text=True)
    cli("clients", "create", "--username", "c0001", "--first-name", "B", "--last-name", "L",
        "--email", "b@example.com", "--password-stdin", stdin="Bench#Pass1\nBench#Pass1\n")
    cli("clients", "recharge", "c0001", "1000000")
    if a.prefill:
        t0 = time.time()
        prefill(os.path.join(d, "s.db"), a.prefill)
        print(f"prefilled {a.prefill:,} usage rows in {time.time() - t0:.0f} s "
              f"({os.path.getsize(os.path.join(d, 's.db')) / 2**20:,.0f} MiB)", file=sys.stderr)
    gen = subprocess.run([binary, "cdrgen", "--format", "asterisk-csv", "--count", str(a.count * 3), "--clients", "1", "--seed", "5"],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    lines = gen[: a.count]
    master = os.path.join(d, "Master.csv")
    open(master, "w").close()
    daemon = subprocess.Popen([binary, "run", "--config", cfg], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        db = None
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                db = sqlite3.connect(f"file:{os.path.join(d, 's.db')}?mode=ro", uri=True)
                db.execute("SELECT count(*) FROM source_positions").fetchone()
                break
            except sqlite3.Error:
                time.sleep(0.05)
        time.sleep(0.5)
        # Every line moves the committed read position (charged or not), so poll that.
        committed = lambda: (db.execute("SELECT max(offset) FROM source_positions").fetchone()[0] or 0)
        written = os.path.getsize(master)
        lat = []
        interval = 1.0 / a.rate
        next_at = time.perf_counter()
        with open(master, "a", buffering=1) as f:
            for i, line in enumerate(lines):
                now = time.perf_counter()
                if now < next_at:
                    time.sleep(next_at - now)
                next_at += interval
                t0 = time.perf_counter()
                f.write(line + "\n")
                f.flush()
                written += len(line.encode()) + 1
                while committed() < written:
                    if time.perf_counter() - t0 > 5:
                        sys.exit(f"line {i} not committed within 5 s")
                    time.sleep(0.0002)
                lat.append((time.perf_counter() - t0) * 1000)
        lat.sort()
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        # Idle CPU: utime+stime ticks over 10 s with nothing appended.
        def ticks():
            with open(f"/proc/{daemon.pid}/stat") as s:
                parts = s.read().rsplit(")", 1)[1].split()
            return int(parts[11]) + int(parts[12])
        t0, c0 = time.time(), ticks()
        time.sleep(10)
        idle = (ticks() - c0) / os.sysconf("SC_CLK_TCK") / (time.time() - t0) * 100
        print(f"append-to-committed over {len(lat)} CDRs at {a.rate:.0f}/s: median {p50:.2f} ms, p99 {p99:.2f} ms, "
              f"max {lat[-1]:.2f} ms; idle CPU {idle:.2f}% of one core")
    finally:
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(timeout=15)
        # A prefilled store is gigabytes: never leave it behind.
        shutil.rmtree(d, ignore_errors=True)
        if rc != 0:
            print(f"daemon exited {rc} on SIGTERM", file=sys.stderr)
            sys.exit(1)

if __name__ == "__main__":
    main()
