"""A timing proxy for the benchmark: forwards every HTTP request to the local AWS unchanged and
records, per request, the operation and how long the local AWS took to answer it (from the
moment the request was read completely to the moment the answer was read completely).

`deploy --endpoint-url http://127.0.0.1:<proxy>` then makes the same calls as usual, and the sum
of the recorded latencies is what its API calls cost one after another. The proxy's own work
(reading and writing on loopback) is outside each recorded latency but inside the client's wall
time, so a wall time / latency sum ratio measured through it is, if anything, pessimistic.
"""

import http.client
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def operation(method, path, headers, body):
    """`service:Operation` as the local AWS counts it, as far as the request tells."""
    target = headers.get("x-amz-target")
    if target:
        return target.split(".", 1)[-1]
    if body and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        if "Action" in form:
            return form["Action"][0]
    if path.startswith("/2015-03-31/functions"):
        return "lambda " + method + " " + "/".join(path.split("?")[0].split("/")[3:5])
    return method + " " + path.split("?")[0][:60]


DENIED = """<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this \
operation. User: arn:aws:sts::123456789012:assumed-role/awsconfig_lambda_ec2_security_group_role/bench is not \
authorized to perform: ec2:{op} because no identity-based policy allows the ec2:{op} action</Message></Error>\
</Errors><RequestID>00000000-0000-4000-8000-000000000000</RequestID></Response>"""


class TimingProxy:
    """`deny`: EC2 operations answered with UnauthorizedOperation instead of being forwarded, as
    AWS answers a role whose policy lacks them (the local AWS does not enforce IAM)."""

    def __init__(self, backend_port, deny=()):
        self.backend_port = backend_port
        self.deny = set(deny)
        self.records = []  # (operation, start, latency seconds, status)
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
            # and the client's delayed ACK add ~40 ms to every answer.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def _body(self):
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("content-length") or 0)
                return self.rfile.read(length) if length else b""

            def _forward(self):
                body = self._body()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                op = operation(self.command, self.path, {k.lower(): v for k, v in headers.items()}, body)
                if op in proxy.deny:
                    data = DENIED.format(op=op).encode()
                    with proxy.lock:
                        proxy.records.append((op + " (denied)", time.perf_counter(), 0.0, 403))
                    self.send_response_only(403, "Forbidden")
                    self.send_header("Content-Type", "text/xml;charset=UTF-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                conn = getattr(self.server.local, "conn", None)
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", proxy.backend_port, timeout=300)
                    self.server.local.conn = conn
                start = time.perf_counter()
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                except (http.client.HTTPException, OSError):
                    conn.close()
                    self.server.local.conn = None
                    conn = http.client.HTTPConnection("127.0.0.1", proxy.backend_port, timeout=300)
                    self.server.local.conn = conn
                    start = time.perf_counter()
                    conn.request(self.command, self.path, body=body, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                latency = time.perf_counter() - start
                with proxy.lock:
                    proxy.records.append((op, start, latency, answer.status))
                self.send_response_only(answer.status, answer.reason)
                length_sent = False
                for k, v in answer.getheaders():
                    if k.lower() in HOP_BY_HOP:
                        continue
                    if k.lower() == "content-length":
                        if self.command == "HEAD":
                            self.send_header(k, v)
                            length_sent = True
                        continue
                    self.send_header(k, v)
                if not length_sent:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.local = threading.local()
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def reset(self):
        with self.lock:
            self.records = []

    def busy(self):
        """Seconds during which at least one call was outstanding: the union of the calls'
        intervals, which is what a caller that overlaps its calls waits for."""
        with self.lock:
            spans = sorted((start, start + latency) for _, start, latency, _ in self.records)
        total, end = 0.0, None
        for start, stop in spans:
            if end is None or start > end:
                total += stop - start
                end = stop
            elif stop > end:
                total += stop - end
                end = stop
        return total

    def summary(self):
        """(calls, sum of latencies in seconds, {operation: (calls, seconds)})."""
        with self.lock:
            records = list(self.records)
        by_op = {}
        for op, _, latency, _ in records:
            calls, seconds = by_op.get(op, (0, 0.0))
            by_op[op] = (calls + 1, seconds + latency)
        return len(records), sum(r[2] for r in records), by_op
