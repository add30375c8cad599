"""An HTTPS webhook receiver for genq's tests.

Verifies every delivery two ways — the seed document's X-Webhook-Signature
(hex HMAC-SHA256 of the raw body keyed with the secret string) and the
official `standardwebhooks` library — and appends what it saw, one JSON object
per line, to --log. Answers 500 to the first --fail requests, then 200.
Prints the port it listens on as its first line of output.
"""

import argparse
import hashlib
import hmac
import http.server
import json
import ssl
import threading

from standardwebhooks.webhooks import Webhook

parser = argparse.ArgumentParser()
parser.add_argument("--cert", required=True)
parser.add_argument("--key", required=True)
parser.add_argument("--log", required=True)
parser.add_argument("--secret", action="append", required=True, help="may be repeated")
parser.add_argument("--fail", type=int, default=0)
parser.add_argument("--port", type=int, default=0)
args = parser.parse_args()

lock = threading.Lock()
seen = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = {
            "path": self.path,
            "webhook_id": headers.get("webhook-id"),
            "x_webhook_signature": headers.get("x-webhook-signature"),
            "webhook_signature": headers.get("webhook-signature"),
            "body": body.decode("utf-8"),
            "seed_ok": {},
            "standard_ok": {},
        }
        for secret in args.secret:
            expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
            got = headers.get("x-webhook-signature", "")
            record["seed_ok"][secret] = len(got) == len(expected) and hmac.compare_digest(got, expected)
            try:
                Webhook(secret).verify(body, headers)
                record["standard_ok"][secret] = True
            except Exception as error:  # the library raises WebhookVerificationError
                record["standard_ok"][secret] = False
                record.setdefault("standard_errors", {})[secret] = str(error)
        with lock:
            seen += 1
            status = 500 if seen <= args.fail else 200
            record["answered"] = status
            with open(args.log, "a") as log:
                log.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(args.cert, args.key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
