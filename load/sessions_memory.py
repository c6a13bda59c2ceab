#!/usr/bin/env python3
"""What live sessions and revoked tokens cost a running instance in memory.

Every instance keeps each live session (and each revoked one, until its tokens expire)
in its in-memory revoked set, and each revoked token without a session by its jti, so
that checking a token needs no database read. This measures those entries on a real
server: it starts the release binary on a fresh SQLite file, reads its resident memory
at idle, then writes SESSIONS live sessions straight into the database, restarts the
server (whose revocation follower loads every live session at start-up) and reads it
again; then the same with REVOKED revoked sid-less tokens. It also reports the time
from exec to the first 200 of GET /ready with them, and the SQLite bytes per row.

    cargo build --release --bin stores-api
    python3 load/sessions_memory.py [--bin target/release/stores-api]
                                    [--sessions 1000000] [--revoked 1000000]

Standard library only; everything runs on 127.0.0.1 and in a temporary directory.
"""

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

SETTLE_SECONDS = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Server:
    """The release binary on `db`, started and stopped around each reading."""

    def __init__(self, binary, db, workdir):
        self.binary, self.db, self.workdir = binary, db, workdir
        self.proc = None
        self.base = None

    def start(self):
        port = free_port()
        env = dict(
            os.environ,
            APP_ENV="production",
            HOST="127.0.0.1",
            PORT=str(port),
            DATABASE_URL=self.db,
            DATA_DIR=self.workdir,
            JWT_SECRET_KEY="m" * 64,
            BCRYPT_COST="10",
            METRICS_ADDR="",
            RUST_LOG="warn",
        )
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.base = f"http://127.0.0.1:{port}"
        while True:
            if self.proc.poll() is not None:
                sys.exit("sessions_memory: the server stopped: "
                         + self.proc.stderr.read().decode(errors="replace")[-2000:])
            try:
                with urllib.request.urlopen(self.base + "/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - started > 600:
                sys.exit("sessions_memory: the server was not ready within 10 minutes")
            time.sleep(0.01)
        ready_ms = (time.monotonic() - started) * 1000
        time.sleep(SETTLE_SECONDS)
        return ready_ms, rss_kib(self.proc.pid)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)

    def register(self, username):
        body = json.dumps({"username": username, "password": "memory-password-1"}).encode()
        request = urllib.request.Request(
            self.base + "/register", body, {"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=30).close()


def stamp(t):
    """A timestamp as the service stores it in SQLite."""
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default="target/release/stores-api")
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--revoked", type=int, default=1_000_000)
    args = parser.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"sessions_memory: no binary at {args.bin} (cargo build --release)")

    with tempfile.TemporaryDirectory(prefix="stores-memory.") as tmp:
        db = os.path.join(tmp, "memory.db")
        server = Server(os.path.abspath(args.bin), db, tmp)
        empty_ms, empty_kib = server.start()
        server.register("memory-user")
        server.stop()
        size_empty = os.path.getsize(db)

        now = datetime.now(timezone.utc).replace(tzinfo=None)
        expires = stamp(now + timedelta(hours=1))
        with sqlite3.connect(db) as conn:
            (user_id,) = conn.execute("SELECT id FROM users").fetchone()
            conn.executemany(
                "INSERT INTO sessions (id, user_id, created_at, expires_at, refresh_jti,"
                " user_agent, ip) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (str(uuid.uuid4()), user_id, stamp(now), expires, str(uuid.uuid4()),
                     "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0", "203.0.113.7")
                    for _ in range(args.sessions)
                ),
            )
        size_sessions = os.path.getsize(db)
        sessions_ms, sessions_kib = server.start()
        server.stop()

        with sqlite3.connect(db) as conn:
            conn.executemany(
                "INSERT INTO revocations (kind, subject, user_id, revoked_at, expires_at)"
                " VALUES ('token', ?, ?, ?, ?)",
                ((str(uuid.uuid4()), user_id, stamp(now), expires)
                 for _ in range(args.revoked)),
            )
        size_revoked = os.path.getsize(db)
        revoked_ms, revoked_kib = server.start()
        server.stop()

    per = lambda kib, n: kib * 1024 / n if n else 0.0  # noqa: E731
    print(f"stores-api memory per entry: {os.cpu_count()} cores, {args.bin}")
    print(f"idle, no sessions:            RSS {empty_kib / 1024:7.1f} MB, "
          f"exec to /ready {empty_ms:6.0f} ms")
    print(f"+ {args.sessions:,} live sessions: RSS {sessions_kib / 1024:7.1f} MB, "
          f"exec to /ready {sessions_ms:6.0f} ms; "
          f"{per(sessions_kib - empty_kib, args.sessions):.0f} bytes of memory and "
          f"{(size_sessions - size_empty) / max(args.sessions, 1):.0f} bytes of SQLite "
          "file per session")
    print(f"+ {args.revoked:,} revoked tokens: RSS {revoked_kib / 1024:7.1f} MB, "
          f"exec to /ready {revoked_ms:6.0f} ms; "
          f"{per(revoked_kib - sessions_kib, args.revoked):.0f} bytes of memory and "
          f"{(size_revoked - size_sessions) / max(args.revoked, 1):.0f} bytes of SQLite "
          "file per revoked token")


if __name__ == "__main__":
    main()
