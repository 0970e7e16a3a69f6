#!/usr/bin/env python3
"""The soak driver behind bench/soak.sh.

The release daemon tails Master.csv while this script appends cdrgen CDRs at a steady rate, renames the
file away (logrotate's rename + create) every --rotate-seconds, and SIGKILLs and restarts the daemon every
--kill-seconds; samples/webhook-receiver.py fails --fail-rate of the webhook requests. At the end it waits
for the ledger to catch up and the outbox to drain, then checks, independently of the agent:

  - every client's Used equals what this script computes from the lines it wrote (its own CSV parsing,
    longest-prefix rating and rounding, one charge per CDR identity): drift 0 for every client;
  - the ledger holds one usage row per billable CDR;
  - every event in the ledger's outbox was accepted by the receiver exactly once by webhook-id (repeats
    are counted as duplicates, which the receiver suppressed), and nothing else arrived;
  - each client's last balance.updated equals its meter.

It prints the figures and exits 0 only when all of that holds. Standard library only.
"""

import argparse
import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

from money import micro

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

# Rates chosen so costs are rarely whole micro-credits; the catch-all covers every cdrgen destination.
DECK = """prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment,description
*,0.05,0,60,60,catch-all
1,0.0123,0,6,6,NANP
1212,0.0099,0.001,30,6,New York
2,0,0,0,1,internal
33,0.02,0,30,6,France
44,0.031,0,1,1,UK
447,0.107,0.0005,30,1,UK mobile
49,0.0205,0,60,60,Germany
7,0.009,0,1,1,Russia
81,0.0333,0.002,45,30,Japan
91,0.017,0,60,1,India
"""


def fmt(v):
    s = f"{abs(v) // 1_000_000}"
    f = f"{abs(v) % 1_000_000:06d}".rstrip("0")
    return ("-" if v < 0 else "") + s + ("." + f if f else "")


def load_deck(text):
    rows = []
    for line in text.strip().split("\n")[1:]:
        c = line.split(",")
        rows.append((("" if c[0] == "*" else c[0]), micro(c[1]), micro(c[2]), int(c[3]), int(c[4])))
    return rows


def cost(rows, dst, billsec):
    d = dst[1:] if dst.startswith("+") else dst
    best = None
    for r in rows:
        if d.startswith(r[0]) and (best is None or len(r[0]) > len(best[0])):
            best = r
    if best is None or billsec <= 0:
        return None
    _, rate, fee, initial, sub = best
    charged = initial if billsec <= initial else initial + -(-(billsec - initial) // sub) * sub
    return fee + -(-(rate * charged) // 60)


def oracle(lines, rows):
    """Used per account and the number of charges, from the written lines alone."""
    used, seen, charged = {}, set(), 0
    for f in csv.reader(lines):
        if len(f) != 21 or f[14] != "ANSWERED":
            continue
        billsec = int(f[13] or 0)
        identity = (f[19], f[20], f[9])
        if billsec <= 0 or identity in seen:
            continue
        seen.add(identity)
        c = cost(rows, f[2], billsec)
        if c is None:
            continue
        used[f[0]] = used.get(f[0], 0) + c
        charged += 1
    return used, charged


class Daemon:
    def __init__(self, binary, config, log_path):
        self.binary, self.config, self.log_path = binary, config, log_path
        self.proc = None
        self.starts = 0
        self.unexpected_exits = []

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "run", "--config", self.config], stdout=subprocess.DEVNULL,
                                     stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        self.starts += 1

    def check(self):
        """Restarts a daemon that died without being killed, and remembers that it did."""
        if self.proc and self.proc.poll() is not None:
            self.unexpected_exits.append(self.proc.returncode)
            self.start()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None


def cli(binary, config, *args, stdin=None):
    extra = ["--config", config] if config else []
    r = subprocess.run([binary, *args, *extra], input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"creditmeter {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def meters(binary, config):
    return {c["username"]: c for c in json.loads(cli(binary, config, "clients", "list", "--json"))}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True, help="the creditmeter binary (release)")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=50.0, help="CDR lines per second")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--fail-rate", type=float, default=0.33)
    p.add_argument("--rotate-seconds", type=float, help="default: 60 s scaled to the run (60 for 10 minutes)")
    p.add_argument("--kill-seconds", type=float, help="default: 90 s scaled to the run (90 for 10 minutes)")
    p.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    p.add_argument("--workdir", help="default: a new temporary directory")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--drain-timeout", type=float, default=900.0)
    args = p.parse_args()

    duration = args.minutes * 60
    rotate_every = args.rotate_seconds or 60 * args.minutes / 10
    kill_every = args.kill_seconds or 90 * args.minutes / 10
    random.seed(args.seed)
    work = args.workdir or tempfile.mkdtemp(prefix="cm-soak-")
    os.makedirs(work, exist_ok=True)
    os.chdir(work)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print(f"soak: {args.minutes:g} min at {args.rate:g} CDRs/s, {args.clients} clients, rotation every "
          f"{rotate_every:g} s, SIGKILL every {kill_every:g} s, receiver failing {args.fail_rate:.0%}, "
          f"seed {args.seed}, {os.cpu_count()} cores, in {work}", flush=True)

    rx_log = os.path.join(work, "received.jsonl")
    receiver = subprocess.Popen([sys.executable, os.path.join(root, "samples", "webhook-receiver.py"),
                                 "--secret", SECRET, "--host", "127.0.0.1", "--port", "0", "--log", rx_log,
                                 "--quiet", "--fail-rate", str(args.fail_rate), "--seed", str(args.seed),
                                 "--exit-on-stdin-eof"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    first = receiver.stdout.readline().strip()
    if not first.startswith("listening on "):
        sys.exit(f"soak: the receiver did not start: {first!r}")
    url = first[len("listening on "):]

    with open("rates.csv", "w") as f:
        f.write(DECK)
    config = os.path.join(work, "creditmeter.toml")
    with open(config, "w") as f:
        f.write(f"""[store]
path = "store.db"

[[source]]
name = "pbx"
path = "Master.csv"
format = "asterisk-csv"
timezone = "UTC"
start_at = "beginning"

[[plan]]
name = "default"
rates = "rates.csv"

[delivery]
balance_interval_seconds = 2

[[endpoint]]
name = "soak"
url = "{url}"
events = ["*"]
secret = "{SECRET}"
timeout_seconds = 2
""")

    usernames = [f"c{i:04d}" for i in range(1, args.clients + 1)]
    for u in usernames:
        cli(args.bin, config, "clients", "create", "--username", u, "--first-name", "Soak", "--last-name", "Client",
            "--email", f"{u}@example.com", "--password-stdin", stdin="Soak#Pass1\nSoak#Pass1\n")
        # Different credits so that some clients cross low, critical and exhausted during the run.
        cli(args.bin, config, "clients", "recharge", u, str(random.choice([5, 20, 50, 100, 400])))

    total = int(args.rate * duration) + 1
    cli(args.bin, None, "cdrgen", "--format", "asterisk-csv", "--count", str(total), "--clients",
        str(args.clients), "--seed", str(args.seed), "-o", "generated.csv")
    with open("generated.csv") as f:
        generated = f.read().splitlines()

    daemon = Daemon(args.bin, config, os.path.join(work, "daemon.log"))
    daemon.start()
    written, rotations, kills = 0, 0, 0
    started = time.monotonic()
    next_rotation, next_kill = rotate_every, kill_every
    try:
        while True:
            now = time.monotonic() - started
            if now >= duration or written >= len(generated):
                break
            due = min(len(generated), int(now * args.rate) + 1)
            if due > written:
                # Asterisk's cdr_csv opens, appends and closes per CDR; a tick's lines go in one write.
                with open("Master.csv", "a") as f:
                    f.write("".join(line + "\n" for line in generated[written:due]))
                written = due
            if now >= next_rotation:
                rotations += 1
                os.rename("Master.csv", f"Master-{rotations:04d}.csv")
                next_rotation += rotate_every
            if now >= next_kill:
                daemon.kill9()
                kills += 1
                daemon.start()
                next_kill += kill_every
            daemon.check()
            time.sleep(0.02)
        writing_ended = time.monotonic()
        print(f"soak: wrote {written} CDR lines in {writing_ended - started:.0f} s; {rotations} rotations, "
              f"{kills} kills; catching up", flush=True)

        rows = load_deck(DECK)
        expected_used, expected_charged = oracle(generated[:written], rows)
        deadline = time.monotonic() + 300
        while True:
            daemon.check()
            got = meters(args.bin, config)
            drift = {u: micro(got[u]["used"]) - expected_used.get(u, 0) for u in usernames}
            if all(v == 0 for v in drift.values()) or time.monotonic() > deadline:
                break
            time.sleep(1)
        caught_up = time.monotonic() - writing_ended

        db = sqlite3.connect("store.db", timeout=30)
        deadline = time.monotonic() + args.drain_timeout
        while True:
            daemon.check()
            # balance.updated is coalesced per client (balance_interval_seconds): the last one is created
            # after the last charge, so "drained" also needs no client waiting for its balance event.
            left = db.execute("SELECT (SELECT count(*) FROM deliveries) + (SELECT count(*) FROM balance_dirty)").fetchone()[0]
            if left == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        drained = time.monotonic() - writing_ended
        time.sleep(1)  # the last answers are logged by the receiver after they are sent
        charged = db.execute("SELECT count(*) FROM usage").fetchone()[0]
        # Delivered events are pruned from the outbox; its AUTOINCREMENT counter still says how many
        # were ever created (ids are never reused), and endpoint_state how many the daemon saw delivered.
        outbox = dict(db.execute("SELECT event_id, type FROM outbox").fetchall())
        created = (db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone() or [0])[0]
        delivered = (db.execute("SELECT delivered FROM endpoint_state WHERE endpoint = 'soak'").fetchone() or [0])[0]
        dead = db.execute("SELECT count(*) FROM deliveries WHERE status = 'dead'").fetchone()[0]
        db.close()
        final = meters(args.bin, config)
    finally:
        stop_status = daemon.stop() if daemon.proc else None
        receiver.stdin.close()
        receiver.wait(timeout=10)

    received = [json.loads(l) for l in open(rx_log) if l.strip()]
    accepted = [e for e in received if not e.get("duplicate")]
    duplicates = [e for e in received if e.get("duplicate")]
    accepted_ids = [e["id"] for e in accepted]
    by_type = {}
    for e in accepted:
        by_type[e["type"]] = by_type.get(e["type"], 0) + 1
    # Every event still in the outbox arrived; and as many distinct ids arrived as events were created.
    missing = set(outbox) - set(accepted_ids)
    unexpected = len(set(accepted_ids)) - created
    last_balance = {}
    for e in accepted:
        if e["type"] == "balance.updated":
            d = e["body"]["data"]
            last_balance[d["username"]] = d
    balance_mismatch = [u for u in usernames if u in last_balance and any(
        last_balance[u][k] != final[u][k] for k in ("available", "used", "assigned"))]
    no_balance = [u for u in usernames if u not in last_balance and micro(final[u]["used"]) > 0]

    family = lambda prefix: sum(n for t, n in by_type.items() if t.startswith(prefix))
    max_drift = max(abs(v) for v in drift.values()) if drift else 0
    print("soak figures:")
    print(f"  cores                   {os.cpu_count()}")
    print(f"  duration                {args.minutes:g} min of writing at {args.rate:g} CDRs/s")
    print(f"  CDR lines written       {written}")
    print(f"  billable (independent)  {expected_charged}")
    print(f"  charged (ledger rows)   {charged}")
    print(f"  rotations               {rotations}")
    print(f"  kills (SIGKILL)         {kills}")
    print(f"  daemon starts           {daemon.starts} (unexpected exits: {len(daemon.unexpected_exits)}"
          f"{' ' + str(daemon.unexpected_exits) if daemon.unexpected_exits else ''})")
    print(f"  caught up after         {caught_up:.1f} s (outbox drained after {drained:.1f} s)")
    print(f"  drift per client        " + " ".join(f"{u}={fmt(drift[u])}" for u in usernames))
    print(f"  max |drift|             {fmt(max_drift)} credits over {len(usernames)} clients")
    print(f"  events created (ledger) {created} (delivered per the ledger: {delivered}; {len(outbox)} not yet pruned)")
    print(f"  events received once    {len(set(accepted_ids))} distinct ids in {len(accepted)} accepted "
          f"(balance.updated {by_type.get('balance.updated', 0)}, credit.* {family('credit.')}, "
          f"client.* {family('client.')}: created {by_type.get('client.created', 0)}, "
          f"recharged {by_type.get('client.recharged', 0)})")
    print(f"  duplicates seen         {len(duplicates)} (suppressed by webhook-id, {len(set(e['id'] for e in duplicates))} ids)")
    print(f"  missing / unexpected    {len(missing) + max(0, -unexpected)} / {max(0, unexpected)}")
    print(f"  dead letters            {dead}")
    print(f"  last balance = ledger   {len(usernames) - len(balance_mismatch) - len(no_balance)} of {len(usernames)} clients")
    print(f"  daemon stop (SIGTERM)   exit {stop_status}")

    problems = []
    if max_drift != 0:
        problems.append("ledger drift")
    if charged != expected_charged:
        problems.append(f"charged {charged} != billable {expected_charged}")
    if len(set(accepted_ids)) != len(accepted_ids):
        problems.append("an id accepted twice")
    if missing or unexpected or delivered != created:
        problems.append(f"events: {len(missing)} missing, {unexpected:+d} received vs created, "
                        f"{delivered} delivered of {created}")
    if dead:
        problems.append("dead letters")
    if by_type.get("client.created", 0) != len(usernames) or by_type.get("client.recharged", 0) != len(usernames):
        problems.append("client.* events")
    if balance_mismatch or no_balance:
        problems.append(f"last balance differs for {balance_mismatch + no_balance}")
    if daemon.unexpected_exits:
        problems.append("the daemon exited on its own")
    if stop_status != 0:
        problems.append("SIGTERM did not exit 0")
    if kills == 0 or rotations == 0:
        problems.append("the run was too short to kill or rotate")
    print("soak: " + ("PASS" if not problems else "FAIL: " + "; ".join(problems)))
    if args.keep or problems:
        print(f"soak: work directory kept: {work}")
    else:
        subprocess.run(["rm", "-rf", work])
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
