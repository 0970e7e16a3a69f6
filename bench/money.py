"""Credit amounts for the benchmark and soak scripts: decimal strings ↔ integer µcr, without floats."""


def micro(text):
    """A decimal credit string to integer micro-credits, by string surgery (no floats)."""
    text = text.strip()
    neg = text.startswith("-")
    if neg:
        text = text[1:]
    whole, _, frac = text.partition(".")
    value = int(whole or "0") * 1_000_000 + int((frac + "000000")[:6] or "0")
    return -value if neg else value


def wrong_clients(expected_path, clients_path):
    """The clients whose Used in `clients list --json` (at clients_path) is not the corpus's expected cost."""
    import json
    expected = json.load(open(expected_path))["cost"]
    got = {c["username"]: micro(c["used"]) for c in json.load(open(clients_path))}
    return [u for u in expected if got.get(u, 0) != expected[u]]
