#!/usr/bin/env python3
"""Append-to-alert-received latency: CDR appended to a tailed file → credit.low received by a webhook.

N clients start with 1 credit each. CDRs are appended at a steady rate (default 200/s): filler calls of
a rich client, and among them one 4,800 s call per measured client, which costs 0.8 credit and takes it
from ok to low. samples/webhook-receiver.py logs when each signed credit.low arrived; the latency is
that time minus the time the line was written. Prints the median and p99.

Usage: bench/alert_latency.py [--bin PATH] [--alerts N] [--rate PER_SECOND]
"""
import argparse, json, os, signal, statistics, subprocess, sys, tempfile, time

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=".build/release/creditmeter")
    ap.add_argument("--alerts", type=int, default=200)
    ap.add_argument("--rate", type=float, default=200.0)
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    here = os.path.dirname(os.path.abspath(__file__))
    d = tempfile.mkdtemp(prefix="cm-alert-")
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    rx_log = os.path.join(d, "rx.jsonl")
    rx = subprocess.Popen([sys.executable, os.path.join(here, "..", "samples", "webhook-receiver.py"), "--secret", secret,
                           "--port", "0", "--log", rx_log, "--quiet"], stdout=subprocess.PIPE, text=True)
    url = rx.stdout.readline().strip().removeprefix("listening on ")
    cfg = os.path.join(d, "c.toml")
    with open(os.path.join(d, "rates.csv"), "w") as f:
        f.write("prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment\n*,0.01,0,1,1\n")
    with open(cfg, "w") as f:
        f.write(f'[store]\npath = "s.db"\n[[source]]\nname = "pbx"\npath = "Master.csv"\nformat = "asterisk-csv"\n'
                f'timezone = "UTC"\nstart_at = "beginning"\n[[plan]]\nname = "default"\nrates = "rates.csv"\n'
                f'[delivery]\nbalance_interval_seconds = 10\n'
                f'[[endpoint]]\nname = "rx"\nurl = "{url}"\nevents = ["credit.*"]\nsecret = "{secret}"\n')
    def cli(*args, stdin=None):
        subprocess.run([binary, *args, "--config", cfg], input=stdin, check=True, capture_output=True, text=True)
    print(f"creating {a.alerts + 1} clients…", file=sys.stderr)
    users = ["rich"] + [f"a{i:04d}" for i in range(a.alerts)]
    for u in users:
        cli("clients", "create", "--username", u, "--first-name", "B", "--last-name", "L", "--email", f"{u}@example.com",
            "--password-stdin", stdin="Bench#Pass1\nBench#Pass1\n")
        cli("clients", "recharge", u, "1000000" if u == "rich" else "1")
    def cdr(account, billsec, n):
        return (f'"{account}","100","5550123","out","x","SIP/1","SIP/2","Dial","","2026-01-01 10:00:00",'
                f'"2026-01-01 10:00:05","2026-01-01 12:00:00",{billsec + 5},{billsec},"ANSWERED","DOCUMENTATION",'
                f'"1767261600.{n}","","","1767261600.{n}",1')
    master = os.path.join(d, "Master.csv")
    open(master, "w").close()
    daemon = subprocess.Popen([binary, "run", "--config", cfg], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        time.sleep(2)  # start-up, and the recharges' credit.recovered alerts go out first
        written = {}
        interval = 1.0 / a.rate
        per_alert = 4  # filler lines between measured ones
        n = 0
        next_at = time.perf_counter()
        with open(master, "a", buffering=1) as f:
            for i in range(a.alerts):
                for k in range(per_alert + 1):
                    now = time.perf_counter()
                    if now < next_at:
                        time.sleep(next_at - now)
                    next_at += interval
                    n += 1
                    if k == per_alert:
                        f.write(cdr(users[i + 1], 4800, n) + "\n")
                        written[users[i + 1]] = time.time()
                    else:
                        f.write(cdr("rich", 30, n) + "\n")
                    f.flush()
        deadline = time.time() + 30
        got = {}
        while time.time() < deadline and len(got) < a.alerts:
            time.sleep(0.1)
            got = {}
            with open(rx_log) as f:
                for line in f:
                    e = json.loads(line)
                    body = e["body"] if isinstance(e["body"], dict) else json.loads(e["body"])
                    if e["type"] == "credit.low" and not e.get("duplicate"):
                        got[body["data"]["username"]] = e["received_at"]
        lat = sorted((got[u] - written[u]) * 1000 for u in got if u in written)
        if len(lat) < a.alerts:
            sys.exit(f"only {len(lat)} of {a.alerts} credit.low alerts arrived")
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"append-to-alert-received over {len(lat)} alerts, {n} CDRs at {a.rate:.0f}/s: "
              f"median {statistics.median(lat):.2f} ms, p99 {p99:.2f} ms, max {lat[-1]:.2f} ms")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)
        rx.kill()

if __name__ == "__main__":
    main()
