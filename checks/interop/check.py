#!/usr/bin/env python3
"""Flask-JWT-Extended interoperability check for stores-api.

Starts the real server binary on a free port with a throwaway SQLite database, builds a
Flask app in-process that shares the JWT key, and checks both directions:

  1. tokens minted by stores-api are accepted (or refused) by Flask-JWT-Extended's
     decorators as the contract says (API.md, "Tokens");
  2. tokens minted by Flask-JWT-Extended are accepted (or refused) by stores-api.

Usage: check.py [PATH_TO_BINARY]   (default: target/debug/stores-api)

Prints one "ok - ..." / "FAIL - ..." line per check, then "N passed, M failed".
Exits 1 if any check failed. HTTP to our server uses only the standard library.
"""

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

from flask import Flask, jsonify
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
    jwt_required,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin-password-123"
STARTUP_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------- reporting

class Report:
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


# --------------------------------------------------------------------------- HTTP to our server

class Response:
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


class Api:
    def __init__(self, base_url):
        self.base_url = base_url

    def request(self, method, path, body=None, token=None):
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
                return Response(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return Response(err.code, err.headers, err.read())


# --------------------------------------------------------------------------- the server

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, binary, secret_key):
        self.binary = binary
        self.secret_key = secret_key
        self.tmpdir = tempfile.mkdtemp(prefix="stores-api-interop-")
        self.port = free_port()
        self.log_path = os.path.join(self.tmpdir, "server.log")
        self.proc = None
        self.log_file = None

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        env = dict(os.environ)
        env.update(
            {
                "APP_ENV": "test",
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
                "DATABASE_URL": os.path.join(self.tmpdir, "interop.db"),
                "JWT_SECRET_KEY": self.secret_key,
                "BCRYPT_COST": "4",
                "ADMIN_USERNAME": ADMIN_USERNAME,
                "ADMIN_PASSWORD": ADMIN_PASSWORD,
                "RUST_LOG": "warn",
            }
        )
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary],
            cwd=str(REPO_ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )

    def wait_healthy(self):
        """Return None when GET /health answers 200, else a reason string."""
        api = Api(self.base_url)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"server exited with status {self.proc.returncode}"
            try:
                resp = api.request("GET", "/health")
                if resp.status == 200:
                    return None
                last = resp.describe()
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.25)
        return f"/health not 200 within {STARTUP_TIMEOUT_S:.0f}s (last: {last})"

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as fh:
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.log_file is not None:
            self.log_file.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


# --------------------------------------------------------------------------- Flask side

def unverified_claims(token):
    """Payload of a JWT without checking it (only to mirror iss/aud into Flask's config)."""
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))


def make_flask_app(secret_key):
    app = Flask("stores_api_interop")
    app.config.update(
        TESTING=True,
        JWT_SECRET_KEY=secret_key,
        JWT_ALGORITHM="HS256",
        JWT_TOKEN_LOCATION=["headers"],
    )
    JWTManager(app)

    @app.get("/protected")
    @jwt_required()
    def protected():
        return jsonify(get_jwt())

    @app.get("/fresh")
    @jwt_required(fresh=True)
    def fresh():
        return jsonify(get_jwt())

    @app.get("/refresh")
    @jwt_required(refresh=True)
    def refresh():
        return jsonify(get_jwt())

    return app


def flask_call(app, path, token):
    """Call a protected Flask route; return (status, json)."""
    resp = app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})
    return resp.status_code, resp.get_json(silent=True)


def is_uuid(value):
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------- the checks

class Interop:
    def __init__(self, report, api, secret_key):
        self.r = report
        self.api = api
        self.secret_key = secret_key
        self.flask = None
        self.run_id = secrets.token_hex(4)
        self.user = {"username": f"interop_{self.run_id}", "password": "user-password-123"}
        self.user_id = None
        self.admin_id = None
        self.user_login = None
        self.admin_login = None

    # helpers -----------------------------------------------------------------

    def register(self, username, password):
        resp = self.api.request("POST", "/register", {"username": username, "password": password})
        if resp.status != 201:
            raise RuntimeError(f"POST /register {username!r}: {resp.describe()}")

    def login(self, username, password):
        resp = self.api.request("POST", "/login", {"username": username, "password": password})
        if resp.status != 200 or not isinstance(resp.json, dict):
            raise RuntimeError(f"POST /login {username!r}: {resp.describe()}")
        return resp.json

    def me(self, access_token):
        resp = self.api.request("GET", "/me", token=access_token)
        if resp.status != 200 or not isinstance(resp.json, dict):
            raise RuntimeError(f"GET /me: {resp.describe()}")
        return resp.json

    def throwaway_user(self, label):
        username = f"interop_{self.run_id}_{label}"
        self.register(username, "throwaway-password-1")
        tokens = self.login(username, "throwaway-password-1")
        return self.me(tokens["access_token"])["id"]

    def mint_access(self, identity, fresh=False, is_admin=False, app=None):
        with (app or self.flask).app_context():
            return create_access_token(
                identity=str(identity), fresh=fresh, additional_claims={"is_admin": is_admin}
            )

    def mint_refresh(self, identity, is_admin=False):
        with self.flask.app_context():
            return create_refresh_token(
                identity=str(identity), additional_claims={"is_admin": is_admin}
            )

    def expect_error(self, name, resp, status, error):
        self.r.check(
            f"{name} -> {status} {error}",
            resp.status == status and resp.error_code() == error,
            resp.describe(),
        )

    # setup ---------------------------------------------------------------------

    def setup(self):
        self.register(self.user["username"], self.user["password"])
        self.r.check("POST /register -> 201", True)
        login = self.login(self.user["username"], self.user["password"])
        self.user_login = login
        self.r.check(
            "POST /login -> 200 with access_token, refresh_token, token_type Bearer, expires_in",
            all(isinstance(login.get(k), str) for k in ("access_token", "refresh_token"))
            and login.get("token_type") == "Bearer"
            and isinstance(login.get("expires_in"), int)
            and not isinstance(login.get("expires_in"), bool),
            json.dumps(login)[:300],
        )
        me = self.me(login["access_token"])
        self.user_id = me["id"]
        self.r.check(
            "GET /me -> 200 {id, username, is_admin, created_at}",
            isinstance(me.get("id"), int)
            and me.get("username") == self.user["username"]
            and me.get("is_admin") is False
            and isinstance(me.get("created_at"), str),
            json.dumps(me)[:300],
        )

        # Build the Flask app; mirror iss/aud if our server puts them in its tokens, so
        # both sides agree on them (they are optional in the contract).
        self.flask = make_flask_app(self.secret_key)
        claims = unverified_claims(login["access_token"])
        if "iss" in claims:
            self.flask.config["JWT_ENCODE_ISSUER"] = claims["iss"]
            self.flask.config["JWT_DECODE_ISSUER"] = claims["iss"]
            print(f"# server tokens carry iss={claims['iss']!r}; Flask configured to match")
        if "aud" in claims:
            self.flask.config["JWT_ENCODE_AUDIENCE"] = claims["aud"]
            self.flask.config["JWT_DECODE_AUDIENCE"] = claims["aud"]
            print(f"# server tokens carry aud={claims['aud']!r}; Flask configured to match")

        admin_login = self.login(ADMIN_USERNAME, ADMIN_PASSWORD)
        self.admin_login = admin_login
        self.admin_id = self.me(admin_login["access_token"])["id"]

    # direction 1: our tokens -> Flask ---------------------------------------------

    def ours_to_flask(self):
        access = self.user_login["access_token"]
        refresh = self.user_login["refresh_token"]

        status, claims = flask_call(self.flask, "/protected", access)
        self.r.check(
            "Flask @jwt_required() accepts our access token",
            status == 200 and isinstance(claims, dict),
            f"HTTP {status}: {claims}",
        )
        claims = claims if isinstance(claims, dict) else {}
        self.r.check("Flask sees type == 'access'", claims.get("type") == "access", claims.get("type"))
        self.r.check("Flask sees fresh == True on a login token", claims.get("fresh") is True,
                     repr(claims.get("fresh")))
        self.r.check(
            "Flask sees sub == the user id as a string",
            claims.get("sub") == str(self.user_id),
            f"sub={claims.get('sub')!r}, id={self.user_id!r}",
        )
        self.r.check("Flask sees is_admin == False", claims.get("is_admin") is False,
                     repr(claims.get("is_admin")))
        self.r.check("Flask sees a sid (UUID)", is_uuid(claims.get("sid")), repr(claims.get("sid")))
        self.r.check(
            "Flask sees jti (UUID), iat, nbf, exp",
            is_uuid(claims.get("jti")) and all(isinstance(claims.get(k), int) for k in ("iat", "nbf", "exp")),
            json.dumps({k: claims.get(k) for k in ("jti", "iat", "nbf", "exp")}),
        )
        login_sid = claims.get("sid")

        status, body = flask_call(self.flask, "/fresh", access)
        self.r.check("Flask @jwt_required(fresh=True) accepts our login access token", status == 200,
                     f"HTTP {status}: {body}")

        status, body = flask_call(self.flask, "/refresh", refresh)
        self.r.check("Flask @jwt_required(refresh=True) accepts our refresh token", status == 200,
                     f"HTTP {status}: {body}")
        if status == 200 and isinstance(body, dict):
            self.r.check(
                "Flask sees the refresh token's type == 'refresh', fresh == False, same sid",
                body.get("type") == "refresh" and body.get("fresh") is False and body.get("sid") == login_sid,
                json.dumps({k: body.get(k) for k in ("type", "fresh", "sid")}),
            )
        status, body = flask_call(self.flask, "/protected", refresh)
        self.r.check("Flask @jwt_required() refuses our refresh token", status != 200,
                     f"HTTP {status}: {body}")
        status, body = flask_call(self.flask, "/refresh", access)
        self.r.check("Flask @jwt_required(refresh=True) refuses our access token", status != 200,
                     f"HTTP {status}: {body}")

        # admin
        status, claims = flask_call(self.flask, "/protected", self.admin_login["access_token"])
        self.r.check(
            "Flask sees is_admin == True on the admin's token",
            status == 200 and isinstance(claims, dict) and claims.get("is_admin") is True
            and claims.get("sub") == str(self.admin_id),
            f"HTTP {status}: {claims}",
        )

        # after a refresh, the new access token is valid but not fresh
        resp = self.api.request("POST", "/refresh", token=refresh)
        ok = self.r.check(
            "POST /refresh with our refresh token -> 200 with new tokens",
            resp.status == 200 and isinstance(resp.json, dict)
            and isinstance(resp.json.get("access_token"), str)
            and isinstance(resp.json.get("refresh_token"), str),
            resp.describe(),
        )
        if not ok:
            return
        new_access = resp.json["access_token"]
        status, claims = flask_call(self.flask, "/protected", new_access)
        self.r.check(
            "Flask accepts the refreshed access token with fresh == False and the same sid",
            status == 200 and isinstance(claims, dict) and claims.get("fresh") is False
            and claims.get("sid") == login_sid,
            f"HTTP {status}: {claims}",
        )
        status, body = flask_call(self.flask, "/fresh", new_access)
        self.r.check("Flask @jwt_required(fresh=True) refuses the refreshed access token",
                     status != 200, f"HTTP {status}: {body}")

    # direction 2: Flask tokens -> ours -----------------------------------------------

    def flask_to_ours(self):
        # plain user token, not fresh, not admin
        token = self.mint_access(self.user_id, fresh=False, is_admin=False)
        resp = self.api.request("GET", "/me", token=token)
        self.r.check(
            "Flask access token: GET /me -> 200 with that user's username",
            resp.status == 200 and isinstance(resp.json, dict)
            and resp.json.get("username") == self.user["username"]
            and resp.json.get("id") == self.user_id,
            resp.describe(),
        )
        resp = self.api.request("GET", "/users", token=token)
        self.expect_error("Flask non-admin token: GET /users", resp, 403, "admin_required")

        # admin token
        admin_token = self.mint_access(self.admin_id, fresh=False, is_admin=True)
        resp = self.api.request("GET", "/users", token=admin_token)
        self.r.check(
            "Flask is_admin token: GET /users -> 200 list",
            resp.status == 200 and isinstance(resp.json, list),
            resp.describe(),
        )

        # freshness
        victim1 = self.throwaway_user("fresh")
        victim2 = self.throwaway_user("notfresh")
        victim3 = self.throwaway_user("timed")

        fresh_admin = self.mint_access(self.admin_id, fresh=True, is_admin=True)
        resp = self.api.request("DELETE", f"/user/{victim1}", token=fresh_admin)
        self.r.check("Flask fresh admin token: DELETE /user/{id} -> 200", resp.status == 200,
                     resp.describe())

        resp = self.api.request("DELETE", f"/user/{victim2}", token=admin_token)
        self.expect_error("Flask non-fresh admin token: DELETE /user/{id}", resp, 401,
                          "fresh_token_required")

        expired_fresh = self.mint_access(self.admin_id, fresh=timedelta(minutes=-5), is_admin=True)
        resp = self.api.request("DELETE", f"/user/{victim2}", token=expired_fresh)
        self.expect_error("Flask timed freshness in the past: DELETE /user/{id}", resp, 401,
                          "fresh_token_required")

        timed = self.mint_access(self.admin_id, fresh=timedelta(minutes=5), is_admin=True)
        fresh_claim = unverified_claims(timed).get("fresh")
        self.r.check("Flask encodes timed freshness as a number",
                     isinstance(fresh_claim, (int, float)) and not isinstance(fresh_claim, bool),
                     repr(fresh_claim))
        resp = self.api.request("DELETE", f"/user/{victim3}", token=timed)
        self.r.check("Flask timed-fresh (5 min) admin token: DELETE /user/{id} -> 200",
                     resp.status == 200, resp.describe())

        # refresh token minted by Flask (no sid): rotation, then reuse is refused
        flask_refresh = self.mint_refresh(self.user_id, is_admin=False)
        resp = self.api.request("POST", "/refresh", token=flask_refresh)
        ok = self.r.check(
            "Flask refresh token: POST /refresh -> 200 with new tokens",
            resp.status == 200 and isinstance(resp.json, dict)
            and isinstance(resp.json.get("access_token"), str)
            and isinstance(resp.json.get("refresh_token"), str),
            resp.describe(),
        )
        if ok:
            status, claims = flask_call(self.flask, "/protected", resp.json["access_token"])
            self.r.check(
                "the access token from that refresh is accepted by Flask, not fresh, same sub",
                status == 200 and isinstance(claims, dict) and claims.get("fresh") is False
                and claims.get("sub") == str(self.user_id),
                f"HTTP {status}: {claims}",
            )
        resp = self.api.request("POST", "/refresh", token=flask_refresh)
        self.expect_error("the same Flask refresh token again: POST /refresh", resp, 401,
                          "token_revoked")

        # a Flask access token on a refresh route, and the reverse
        resp = self.api.request("POST", "/refresh", token=token)
        self.expect_error("Flask access token on POST /refresh", resp, 401, "invalid_token")
        resp = self.api.request("GET", "/me", token=self.mint_refresh(self.user_id))
        self.expect_error("Flask refresh token on GET /me", resp, 401, "invalid_token")

        # signed with another key
        other = make_flask_app(secrets.token_urlsafe(48))
        other.config.update(
            {k: v for k, v in self.flask.config.items() if k.startswith("JWT_ENCODE_")}
        )
        forged = self.mint_access(self.user_id, fresh=True, is_admin=True, app=other)
        resp = self.api.request("GET", "/me", token=forged)
        self.expect_error("Flask token signed with a different key: GET /me", resp, 401,
                          "invalid_token")


def main(argv):
    binary = Path(argv[1]) if len(argv) > 1 else REPO_ROOT / "target" / "debug" / "stores-api"
    binary = binary.resolve()
    report = Report()

    if not binary.is_file() or not os.access(binary, os.X_OK):
        report.check(f"server binary exists at {binary}", False, "build it with cargo build --bin stores-api")
        print(f"{report.passed} passed, {report.failed} failed")
        return 1

    secret_key = secrets.token_hex(32)  # 64 characters
    server = Server(str(binary), secret_key)
    try:
        server.start()
        problem = server.wait_healthy()
        if not report.check(f"server starts and GET /health -> 200 (port {server.port})",
                            problem is None, problem or ""):
            tail = server.log_tail()
            if tail:
                print("# server log (last lines):\n" + tail, file=sys.stderr)
        else:
            interop = Interop(report, Api(server.base_url), secret_key)
            report.section("setup: register and log in", interop.setup)
            if interop.flask is not None and interop.admin_id is not None:
                report.section("direction 1: stores-api tokens -> Flask-JWT-Extended",
                               interop.ours_to_flask)
                report.section("direction 2: Flask-JWT-Extended tokens -> stores-api",
                               interop.flask_to_ours)
            if report.failed:
                tail = server.log_tail()
                if tail:
                    print("# server log (last lines):\n" + tail, file=sys.stderr)
    finally:
        server.stop()

    print(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
