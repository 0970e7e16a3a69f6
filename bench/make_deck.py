#!/usr/bin/env python3
"""The benchmarks' 5,000-prefix deck: every destination root the generators use, extended with digits,
plus a catch-all. Deterministic (seeded). Usage: make_deck.py OUT.csv"""
import random, sys
random.seed(5000)
roots = ["1", "2", "33", "34", "39", "44", "49", "52", "55", "7", "81", "86", "91"]
seen = set(roots)
rows = ["prefix,rate_per_minute,connect_fee,initial_increment,subsequent_increment,description", "*,0.05,0,60,60,other"]
for r in roots: rows.append(f"{r},0.0{random.randint(10,99)},0,30,6,root {r}")
while len(seen) < 4999:
    p = random.choice(roots) + "".join(random.choice("0123456789") for _ in range(random.randint(1, 4)))
    if p in seen: continue
    seen.add(p)
    rows.append(f"{p},0.{random.randint(1000,99999):05d},0.000{random.randint(0,9)},{random.choice([1,30,60])},{random.choice([1,6,60])},gen")
open(sys.argv[1], "w").write("\n".join(rows) + "\n")
