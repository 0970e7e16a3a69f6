#!/usr/bin/env python3
"""A sample creditmeter webhook receiver (Standard Webhooks), standard library only.

It checks each request's signature and timestamp, drops repeats of a webhook-id it has already
accepted (creditmeter delivers at least once), and prints every event it accepts.

    python3 samples/webhook-receiver.py --secret-file /etc/creditmeter/management.secret --port 8080

and in creditmeter.toml:

    [[endpoint]]
    name = "sample"
    url = "http://127.0.0.1:8080/"
    secret_file = "/etc/creditmeter/management.secret"

Answers: 204 accepted (or a repeat), 401 bad signature or stale timestamp, 400 malformed.
For tests: --fail-rate / --fail-first answer 500 (or --fail-status) instead of accepting, --delay
sleeps before answering (a slow receiver), --hang-first leaves requests unanswered (a receiver
that times out), --redirect answers 307, --tls-cert/--tls-key serve HTTPS, and --log appends one
JSON line per accepted event (a repeat of an accepted id is logged with "duplicate": true).
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 5 * 60


def decode_secret(text):
    """The HMAC key of a `whsec_` + base64 secret."""
    text = text.strip()
    if not text.startswith("whsec_"):
        raise ValueError("the secret must start with whsec_")
    body = text[len("whsec_"):]
    return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)


def sign(key, msg_id, timestamp, body):
    """`v1,` + base64(HMAC-SHA256(key, id.timestamp.body)), as the sender computes it."""
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify(key, headers, body, now=None):
    """Returns None when the request is authentic and fresh, else the reason it is not."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    try:
        ts = int(timestamp)
    except ValueError:
        return "webhook-timestamp is not an integer"
    now = time.time() if now is None else now
    if abs(now - ts) > TOLERANCE_SECONDS:
        return "webhook-timestamp is more than 5 minutes away from now"
    expected = sign(key, msg_id, timestamp, body)
    # The header may list several space-separated signatures (e.g. during a secret rotation).
    for candidate in signatures.split():
        if hmac.compare_digest(candidate, expected):
            return None
    return "no valid signature"


class Receiver:
    """Shared state: the key, the ids seen, and the failure knobs."""

    def __init__(self, args):
        self.key = decode_secret(args.secret if args.secret else open(args.secret_file).read())
        self.token = open(args.token_file).read().strip() if args.token_file else None
        self.fail_rate = args.fail_rate
        self.fail_first = args.fail_first
        self.fail_status = args.fail_status
        self.delay = args.delay
        self.hang_first = args.hang_first
        self.hang_seconds = args.hang_seconds
        self.quiet = args.quiet
        self.redirect = args.redirect
        self.retry_after = args.retry_after
        self.random = random.Random(args.seed)
        self.lock = threading.Lock()
        self.seen = set()
        self.requests = 0
        self.log = open(args.log, "a", buffering=1) if args.log else None

    def next_request(self):
        """Counts a request and decides, under the lock, whether it hangs and whether it fails."""
        with self.lock:
            self.requests += 1
            n = self.requests
            hang = n <= self.hang_first
            fail = n <= self.fail_first or (self.fail_rate > 0 and self.random.random() < self.fail_rate)
        return hang, fail

    def accept(self, msg_id, event, headers, body):
        """Records an authentic event; returns False when its id was already accepted."""
        with self.lock:
            duplicate = msg_id in self.seen
            self.seen.add(msg_id)
            if self.log:
                line = {"id": msg_id, "type": event.get("type"), "body": event,
                        "received_at": time.time(), "timestamp": int(headers["webhook-timestamp"]),
                        "user_agent": headers.get("user-agent"), "duplicate": duplicate}
                self.log.write(json.dumps(line, separators=(",", ":")) + "\n")
        return not duplicate


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps creditmeter's connection alive; without TCP_NODELAY every answer waits 40 ms.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "creditmeter-sample-receiver"

    def answer(self, status, text="", retry_after=None):
        data = text.encode()
        self.send_response(status)
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", str(len(data)))
        if data:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        if data:
            self.wfile.write(data)

    def do_POST(self):
        try:
            self.handle_post()
        except (BrokenPipeError, ConnectionResetError):
            # The sender gave up waiting (its timeout); it will retry.
            self.close_connection = True

    def handle_post(self):
        r = self.server.receiver
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if r.redirect:
            self.send_response(307)
            self.send_header("Location", r.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        hang, fail = r.next_request()
        if hang:
            # A receiver that stopped answering: the sender times out, and nothing was accepted.
            time.sleep(r.hang_seconds)
            self.close_connection = True
            return
        if r.delay:
            time.sleep(r.delay)
        if fail:
            return self.answer(r.fail_status, "failing on purpose\n", retry_after=r.retry_after)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if r.token is not None and not hmac.compare_digest(headers.get("authorization", ""), "Bearer " + r.token):
            return self.answer(401, "bad bearer token\n")
        problem = verify(r.key, headers, body)
        if problem:
            print(f"rejected {headers.get('webhook-id')}: {problem}", file=sys.stderr, flush=True)
            return self.answer(401, problem + "\n")
        try:
            event = json.loads(body)
        except ValueError:
            return self.answer(400, "the body is not JSON\n")
        msg_id = headers["webhook-id"]
        if r.accept(msg_id, event, headers, body):
            if not r.quiet:
                data = event.get("data", {})
                figures = ""
                if "available" in data:
                    figures = f" {data.get('available')} | {data.get('used')} | {data.get('assigned')} ({data.get('level')})"
                print(f"{event.get('timestamp')} {msg_id} {event.get('type')} {data.get('username', '')}{figures}", flush=True)
        elif not r.quiet:
            print(f"repeat of {msg_id} ignored", flush=True)
        self.answer(204)

    def log_message(self, fmt, *args):
        # One line per event is printed by do_POST; the access log would double it.
        pass


def main():
    p = argparse.ArgumentParser(description="Verify and print creditmeter webhooks.")
    secret = p.add_mutually_exclusive_group(required=True)
    secret.add_argument("--secret", help="the endpoint's whsec_ secret")
    secret.add_argument("--secret-file", help="a file holding the whsec_ secret")
    p.add_argument("--token-file", help="require Authorization: Bearer with this file's token")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port (printed on the first line)")
    p.add_argument("--log", help="append one JSON line per accepted event (id, type, body, received_at)")
    p.add_argument("--fail-rate", type=float, default=0.0, help="answer --fail-status to this fraction of requests")
    p.add_argument("--fail-first", type=int, default=0, help="answer --fail-status to the first N requests")
    p.add_argument("--fail-status", type=int, default=500)
    p.add_argument("--retry-after", help="send this Retry-After (seconds or an HTTP-date) with each failure")
    p.add_argument("--delay", type=float, default=0.0, help="sleep this many seconds before answering every request")
    p.add_argument("--hang-first", type=int, default=0,
                   help="the first N requests get no answer for --hang-seconds, then the connection is closed")
    p.add_argument("--hang-seconds", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=None, help="seed for --fail-rate")
    p.add_argument("--quiet", action="store_true", help="do not print events")
    p.add_argument("--redirect", help="answer every request with 307 to this URL (creditmeter must not follow)")
    p.add_argument("--exit-on-stdin-eof", action="store_true",
                   help="exit when standard input closes (tests: die with the process that started it)")
    p.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate chain")
    p.add_argument("--tls-key", help="the certificate's PEM private key")
    args = p.parse_args()

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.receiver = Receiver(args)
    scheme = "http"
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    host, port = server.server_address[:2]
    if args.exit_on_stdin_eof:
        def watch():
            while sys.stdin.buffer.read(4096):
                pass
            os._exit(0)
        threading.Thread(target=watch, daemon=True).start()
    print(f"listening on {scheme}://{host}:{port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
