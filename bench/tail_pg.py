#!/usr/bin/env python3
"""Agents tailing into one PostgreSQL database: CDR/s per agent and in total, and append-to-committed p99.

For each agent count in --agents, a fresh database on the server at --url (a scripts/pg-server one; see
bench/tail_pg.sh), the hostile corpus's 100 clients (every third with two account codes) created once,
and that many `creditmeter run` agents (nodes pbx1…pbxN, each tailing its own Master.csv):

1. Throughput: each agent's Master.csv gets a whole hostile corpus of --lines lines at once (random hash
   identities, repeats, bad lines, unknown accounts; another seed per agent). Timed until every agent's
   committed read position reaches the end of its file; then every client's Used is checked against the
   corpora's independently computed costs (exact to the µcr).
2. Latency: --rate lines a second per agent, each appended alone to its agent's file, for --seconds; a
   poller reads every agent's committed position (one query, about every millisecond, through a psql
   process it keeps) and takes, for each line, the time from its write to the commit that covers it.

Usage: bench/tail_pg.py --url URL --password-file F --corpus-dir D --deck DECK [--bin PATH] [--agents "1 2 4"]
       [--lines N] [--rate PER_SECOND] [--seconds S]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))


class Psql:
    """One psql process kept open: a query is a line in, a line out (unaligned, tuples only)."""

    def __init__(self, pgbin, url, password):
        env = dict(os.environ, PGPASSWORD=password)
        self.p = subprocess.Popen([os.path.join(pgbin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", url],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1)
        self.query("SET client_min_messages = warning")

    def query(self, sql):
        """The rows of one statement; the marker row ends them, so an empty result is not a hang."""
        self.p.stdin.write(sql.rstrip(";") + ";\nSELECT '--end--';\n")
        rows = []
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("psql ended")
            line = line.rstrip("\n")
            if line == "--end--":
                return rows
            rows.append(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def corpus(corpus_dir, deck, lines, seed):
    path = os.path.join(corpus_dir, f"hostile-{lines}-s{seed}.csv")
    if not os.path.exists(path + ".expected.json"):
        subprocess.run([sys.executable, os.path.join(HERE, "hostile_corpus.py"), str(lines), path, deck,
                        "--seed", str(seed)], check=True)
    return path


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(a, agents, psql_admin, base_url, password):
    db = f"tail{agents}"
    psql_admin.query(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    psql_admin.query(f"CREATE DATABASE {db}")
    url = base_url.rsplit("/", 1)[0] + "/" + db
    work = tempfile.mkdtemp(prefix=f"cm-tailpg{agents}-")
    try:
        return measure(a, agents, url, password, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(a, agents, url, password, work):
    binary = os.path.abspath(a.bin)
    configs = []
    for k in range(1, agents + 1):
        d = os.path.join(work, f"pbx{k}")
        os.makedirs(d)
        with open(os.path.join(d, "pg.password"), "w") as f:
            f.write(password + "\n")
        os.chmod(os.path.join(d, "pg.password"), 0o600)
        shutil.copy(a.deck, os.path.join(d, "rates.csv"))
        open(os.path.join(d, "Master.csv"), "w").close()
        cfg = os.path.join(d, "c.toml")
        with open(cfg, "w") as f:
            f.write(f'[store]\nurl = "{url}"\npassword_file = "pg.password"\n[node]\nname = "pbx{k}"\n'
                    f'[api]\nlisten = "127.0.0.1:{free_port()}"\n'
                    '[[source]]\nname = "pbx"\npath = "Master.csv"\nformat = "asterisk-csv"\ntimezone = "UTC"\n'
                    'start_at = "beginning"\n[[plan]]\nname = "default"\nrates = "rates.csv"\n')
        configs.append((d, cfg))
    files = [corpus(a.corpus_dir, a.deck, a.lines, 100 + k) for k in range(1, agents + 1)]
    for row in open(files[0] + ".clients.tsv"):
        user, codes = row.rstrip("\n").split("\t")
        args = [binary, "clients", "create", "--config", configs[0][1], "--username", user, "--first-name", "B",
                "--last-name", "H", "--email", f"{user}@example.com", "--password-stdin"]
        for c in codes.split():
            args += ["--account", c]
        subprocess.run(args, input="Bench#Pass1\nBench#Pass1\n", text=True, check=True, capture_output=True)
        subprocess.run([binary, "clients", "recharge", "--config", configs[0][1], user, "100000000"],
                       check=True, capture_output=True)
    pg = Psql(a.pgbin, url, password)
    daemons = [subprocess.Popen([binary, "run", "--config", cfg], cwd=d, stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(d, "run.log"), "w")) for d, cfg in configs]
    try:
        deadline = time.time() + 60
        while int(pg.query("SELECT count(*) FROM source_positions")[0]) < agents:
            if time.time() > deadline:
                raise RuntimeError("the agents did not start")
            time.sleep(0.05)

        def positions():
            return {r.split("|")[0]: int(r.split("|")[1]) for r in pg.query('SELECT node, "offset" FROM source_positions')}

        # 1. Throughput: every file whole at once.
        sizes = {}
        t0 = time.time()
        for k, ((d, _), f) in enumerate(zip(configs, files), 1):
            shutil.copyfile(f, os.path.join(d, "Master.csv.tmp"))
            # Appended rather than renamed into place: the agent is tailing this inode.
            with open(os.path.join(d, "Master.csv"), "ab") as out, open(os.path.join(d, "Master.csv.tmp"), "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
            sizes[f"pbx{k}"] = os.path.getsize(os.path.join(d, "Master.csv"))
        done = {}
        deadline = time.time() + 600
        while len(done) < agents:
            now = time.time()
            for node, off in positions().items():
                if node not in done and off >= sizes[node]:
                    done[node] = now - t0
            if now > deadline:
                raise RuntimeError(f"not all committed: {positions()} of {sizes}")
            time.sleep(0.01)
        elapsed = max(done.values())
        expected, charged = {}, 0
        for f in files:
            charged += sum(json.load(open(f + ".expected.json"))["charged"].values())
            for u, c in json.load(open(f + ".expected.json"))["cost"].items():
                expected[u] = expected.get(u, 0) + c
        listed = json.loads(subprocess.run([binary, "clients", "list", "--config", configs[0][1], "--json"],
                                           check=True, capture_output=True, text=True).stdout)
        used = {c["username"]: c["used"] for c in listed}
        from money import micro
        wrong = [u for u, c in expected.items() if micro(used.get(u, "0")) != c]

        # 2. Latency: single lines at a steady rate on every agent at once.
        more = [open(corpus(a.corpus_dir, a.deck, max(a.lines, 2000), 200 + k), "rb").read().splitlines()
                for k in range(1, agents + 1)]
        pending = []  # (node, end offset, written at)
        lock = threading.Lock()
        stop = time.time() + a.seconds
        latencies = []

        def writer(k):
            node, path = f"pbx{k}", os.path.join(configs[k - 1][0], "Master.csv")
            interval, n = 1 / a.rate, 0
            start = time.time()
            with open(path, "ab", buffering=0) as out:
                while time.time() < stop:
                    line = more[k - 1][n % len(more[k - 1])] + b"\n"
                    t = time.time()
                    out.write(line)
                    with lock:
                        pending.append((node, out.tell(), t))
                    n += 1
                    delay = start + n * interval - time.time()
                    if delay > 0:
                        time.sleep(delay)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(1, agents + 1)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) or pending:
            pos = positions()
            now = time.time()
            with lock:
                keep = []
                for node, end, t in pending:
                    if pos.get(node, 0) >= end:
                        latencies.append(now - t)
                    else:
                        keep.append((node, end, t))
                pending[:] = keep
            if time.time() > stop + 30:
                break
            time.sleep(0.001)
        for t in threads:
            t.join()
        latencies.sort()
        p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
        lines_each = a.lines
        return {
            "agents": agents,
            "lines_each": lines_each,
            "seconds": elapsed,
            "per_agent_lines_s": {n: lines_each / s for n, s in sorted(done.items())},
            "total_lines_s": agents * lines_each / elapsed,
            "charged_s": charged / elapsed,
            "exact": not wrong,
            "wrong": wrong[:5],
            "latency_samples": len(latencies),
            "p50_ms": p(0.5) if latencies else None,
            "p99_ms": p(0.99) if latencies else None,
        }
    finally:
        for d in daemons:
            d.terminate()
        for d in daemons:
            d.wait()
        pg.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=".build/release/creditmeter")
    ap.add_argument("--url", required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--pgbin", required=True)
    ap.add_argument("--corpus-dir", required=True)
    ap.add_argument("--deck", required=True)
    ap.add_argument("--agents", default="1 2 4")
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    a = ap.parse_args()
    sys.path.insert(0, HERE)
    password = open(a.password_file).read().rstrip("\n")
    admin = Psql(a.pgbin, a.url, password)
    for n in [int(x) for x in a.agents.split()]:
        r = run(a, n, admin, a.url, password)
        per = ", ".join(f"{k} {v:,.0f}" for k, v in r["per_agent_lines_s"].items())
        print(f"{n} agent(s): {r['lines_each']:,} lines each in {r['seconds']:.1f} s: {r['total_lines_s']:,.0f} lines/s "
              f"in all ({per}), {r['charged_s']:,.0f} CDRs charged/s; {'exact' if r['exact'] else 'NOT EXACT: ' + str(r['wrong'])}; "
              f"{a.rate:g} lines/s per agent: append-to-committed p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms "
              f"({r['latency_samples']:,} lines)", flush=True)
    admin.close()


if __name__ == "__main__":
    main()
