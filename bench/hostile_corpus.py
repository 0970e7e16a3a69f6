#!/usr/bin/env python3
"""A replay corpus shaped like a real Asterisk Master.csv rather than like cdrgen's output.

Writes N lines of the 16-column cdr_csv format (no uniqueid/linkedid, so every CDR's identity is a hash
of its fields and arrives in random order), in end-time order as Asterisk writes them, for 100 clients of
which every third owns two account codes. About 2 % of the lines repeat an earlier line from anywhere in
the file, about 2 % are malformed (cut short, garbage, a non-numeric billsec) and about 1.5 % name an
account no client owns. Quoted caller names carry commas and Latin-1 bytes.

Also writes, next to the corpus, the clients (`.clients.tsv`: username and account codes) and the exact
expected per-client cost in µcr (`.expected.json`), computed here independently of the Swift code from the
deck: longest prefix, increments, ceil to the µcr.

Usage: hostile_corpus.py N OUT.csv DECK.csv [--seed S] [--clients K]   (default 100 clients)
"""
import json
import random
import sys
from datetime import datetime, timedelta, timezone

from money import micro


def load_deck(path):
    rows = {}
    with open(path) as f:
        next(f)
        for line in f:
            parts = line.rstrip("\n").split(",")
            prefix = "" if parts[0] == "*" else parts[0]
            rows[prefix] = (micro(parts[1]), micro(parts[2]), int(parts[3]), int(parts[4]))
    return rows


def cost(deck, dst, billsec):
    d = dst[1:] if dst.startswith("+") else dst
    for n in range(len(d), -1, -1):
        row = deck.get(d[:n])
        if row is not None:
            break
    else:
        return None
    rate, fee, i, s = row
    c = i if billsec <= i else i + -(-(billsec - i) // s) * s
    return fee + -(-(rate * c) // 60)


def main():
    args = sys.argv[1:]
    def option(name, default):
        if name not in args:
            return default
        k = args.index(name)
        value = int(args[k + 1])
        del args[k:k + 2]
        return value
    seed = option("--seed", 11)
    nclients = option("--clients", 100)
    n, out, deck_path = int(args[0]), args[1], args[2]
    rng = random.Random(seed)
    deck = load_deck(deck_path)

    clients = []
    for i in range(1, nclients + 1):
        codes = [f"1{i:03d}"] + ([f"2{i:03d}"] if i % 3 == 0 else [])
        clients.append((f"client{i:03d}", codes))
    owner = {code: user for user, codes in clients for code in codes}
    all_codes = list(owner)
    roots = ["1", "2", "33", "34", "39", "44", "49", "52", "55", "7", "81", "86", "91"]
    names = ["Alice", "Bob", "M\u00fcller, Hans", "O'Brien", "Jos\u00e9", "Support, Line 2", "Zo\u00eb"]
    apps = ["Dial", "Dial", "Dial", "Queue", "Playback", "VoiceMail"]

    expected = {user: 0 for user, _ in clients}
    charged = {user: 0 for user, _ in clients}
    seen = set()
    history = []
    end = datetime(2026, 10, 1, tzinfo=timezone.utc)
    fmt = "%Y-%m-%d %H:%M:%S"

    with open(out, "wb") as f:
        for k in range(n):
            r = rng.random()
            if history and r < 0.02:
                line = history[rng.randrange(len(history))]
            elif r < 0.04:
                kind = rng.randrange(3)
                if kind == 0:
                    line = b'"1001","200","44123'
                elif kind == 1:
                    line = bytes(rng.randrange(32, 127) for _ in range(rng.randrange(5, 80)))
                else:
                    line = (b'"1002","201","4420","from-internal","","SIP/201-1","","Dial","","2026-10-01 00:00:00",'
                            b'"2026-10-01 00:00:01","2026-10-01 00:01:00",59,abc,"ANSWERED","DOCUMENTATION"')
            else:
                end += timedelta(seconds=rng.randrange(0, 6))
                account = f"9{rng.randrange(1000):03d}" if r < 0.055 else rng.choice(all_codes)
                dst = ("+" if rng.random() < 0.3 else "") + rng.choice(roots) + "".join(
                    rng.choice("0123456789") for _ in range(rng.randrange(6, 11)))
                answered = rng.random() < 0.7
                duration = int(rng.expovariate(1 / 150)) + 1
                billsec = max(0, duration - rng.randrange(0, 20)) if answered else 0
                start = end - timedelta(seconds=duration)
                answer = f'"{(end - timedelta(seconds=billsec)).strftime(fmt)}"' if answered else ""
                disposition = "ANSWERED" if answered else rng.choice(["NO ANSWER", "BUSY", "FAILED"])
                clid = f'"{rng.choice(names)}" <{rng.randrange(100, 999)}>'.replace('"', '""')
                fields = [
                    f'"{account}"', f'"{rng.randrange(100, 999)}"', f'"{dst}"', '"from-internal"', f'"{clid}"',
                    f'"SIP/{rng.randrange(100, 999)}-{rng.randrange(1 << 32):08x}"',
                    f'"SIP/trunk-{rng.randrange(1 << 32):08x}"', f'"{rng.choice(apps)}"',
                    f'"SIP/trunk/{dst},60"', f'"{start.strftime(fmt)}"', answer, f'"{end.strftime(fmt)}"',
                    str(duration), str(billsec), f'"{disposition}"', '"DOCUMENTATION"',
                ]
                line = ",".join(fields).encode("latin-1")
                history.append(line)
                user = owner.get(account)
                if user is not None and billsec > 0 and answered and line not in seen:
                    c = cost(deck, dst, billsec)
                    if c is not None:
                        expected[user] += c
                        charged[user] += 1
                seen.add(line)
            f.write(line + b"\n")

    with open(out + ".clients.tsv", "w") as f:
        for user, codes in clients:
            f.write(user + "\t" + " ".join(codes) + "\n")
    with open(out + ".expected.json", "w") as f:
        json.dump({"cost": expected, "charged": charged}, f)


if __name__ == "__main__":
    main()
