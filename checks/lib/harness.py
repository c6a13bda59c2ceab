"""What the Python checks under checks/ share: ok/FAIL reporting, the answer of an HTTP
request to the server, and a free loopback port. Imported by checks/interop/check.py and
checks/verifiers/check.py (each puts this folder on sys.path)."""

import json
import socket
import sys
import traceback


class Report:
    """Counts the checks and prints one `ok - ...` or `FAIL - ...` line for each."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, condition, detail=""):
        if condition:
            self.passed += 1
            print(f"ok - {name}", flush=True)
        else:
            self.failed += 1
            suffix = f" ({detail})" if detail else ""
            print(f"FAIL - {name}{suffix}", flush=True)
        return bool(condition)

    def section(self, name, func):
        """Run a group of checks; an unexpected exception counts as one failure."""
        print(f"# {name}", flush=True)
        try:
            func()
        except Exception as exc:  # noqa: BLE001 - report and go on with the next group
            self.failed += 1
            print(f"FAIL - {name}: unexpected {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc(file=sys.stderr)


class Response:
    """An HTTP answer: status, headers, the raw body and, when it is JSON, the parsed body."""

    def __init__(self, status, headers, body_bytes):
        self.status = status
        self.headers = headers
        self.raw = body_bytes
        try:
            self.json = json.loads(body_bytes.decode("utf-8")) if body_bytes else None
        except (UnicodeDecodeError, ValueError):
            self.json = None

    def error_code(self):
        return self.json.get("error") if isinstance(self.json, dict) else None

    def describe(self):
        text = self.raw.decode("utf-8", "replace")
        if len(text) > 300:
            text = text[:300] + "..."
        return f"HTTP {self.status}: {text}"


def free_port():
    """A port nothing listens on now, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
