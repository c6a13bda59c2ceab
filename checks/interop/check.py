#!/usr/bin/env python3
"""Flask-JWT-Extended interoperability check for stores-api.

Starts the real server binary on a free port with a throwaway SQLite database, builds a
Flask app in-process that shares the JWT key, and checks both directions:

  1. tokens minted by stores-api are accepted (or refused) by Flask-JWT-Extended's
     decorators as the contract says (API.md, "Tokens");
  2. tokens minted by Flask-JWT-Extended are accepted (or refused) by stores-api.

Then it does the same in browser mode: a second server instance reading cookies
(JWT_TOKEN_LOCATION=headers,cookies, JWT_COOKIE_SECURE=false) and a Flask app configured
for Flask-JWT-Extended's cookies with double-submit CSRF values in cookies. Our login's
cookies, their attributes and CSRF values are checked as sent and presented to Flask;
the cookies Flask-JWT-Extended sets (set_access_cookies / set_refresh_cookies) are
presented to our server, with and without X-CSRF-TOKEN; and POST /logout clears the
four cookies.

Usage: check.py [PATH_TO_BINARY]   (default: target/debug/stores-api)

Prints one "ok - ..." / "FAIL - ..." line per check, then "N passed, M failed".
Exits 1 if any check failed. HTTP to our server uses only the standard library.
"""

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
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
    set_access_cookies,
    set_refresh_cookies,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
# checks/lib: the harness the Python checks share.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import harness  # noqa: E402 - found through the line above
from harness import Report, free_port  # noqa: E402

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin-password-123"
STARTUP_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------- HTTP to our server

class Response(harness.Response):
    def set_cookies(self):
        """The Set-Cookie headers as sent, parsed one by one (see parse_set_cookie)."""
        return [parse_set_cookie(raw) for raw in (self.headers.get_all("Set-Cookie") or [])]


class Api:
    def __init__(self, base_url):
        self.base_url = base_url

    def request(self, method, path, body=None, token=None, cookies=None, headers=None):
        """One request; `cookies` (name -> value) go out in one Cookie header, as a
        browser sends them, and `headers` are added as they are."""
        data = None
        extra = headers or {}
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        headers.update(extra)
        req = urllib.request.Request(
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
                return Response(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return Response(err.code, err.headers, err.read())


class SetCookie:
    """One Set-Cookie header: name, value and its attributes (names in lower case; a
    flag such as HttpOnly maps to True)."""

    def __init__(self, raw):
        self.raw = raw
        first, *rest = raw.split(";")
        name, _, value = first.partition("=")
        self.name = name.strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        self.value = value
        self.attrs = {}
        for part in rest:
            key, eq, val = part.strip().partition("=")
            if key:
                self.attrs[key.strip().lower()] = val.strip() if eq else True

    @property
    def max_age(self):
        try:
            return int(self.attrs.get("max-age"))
        except (TypeError, ValueError):
            return None

    def problems(self, httponly, path, max_age, samesite="Lax", secure=False):
        """What differs from the expected attributes (an empty list: nothing)."""
        found = []
        if ("httponly" in self.attrs) != httponly:
            found.append("HttpOnly " + ("missing" if httponly else "present"))
        if self.attrs.get("path") != path:
            found.append(f"Path={self.attrs.get('path')!r}, expected {path!r}")
        if self.max_age != max_age:
            found.append(f"Max-Age={self.attrs.get('max-age')!r}, expected {max_age}")
        got_samesite = self.attrs.get("samesite")
        if samesite is not None and str(got_samesite).lower() != samesite.lower():
            found.append(f"SameSite={got_samesite!r}, expected {samesite!r}")
        if ("secure" in self.attrs) != secure:
            found.append("Secure " + ("missing" if secure else "present"))
        return found


def parse_set_cookie(raw):
    return SetCookie(raw)


def cookies_by_name(set_cookies):
    """name -> list of its Set-Cookie headers, in the order sent."""
    named = {}
    for cookie in set_cookies:
        named.setdefault(cookie.name, []).append(cookie)
    return named


# --------------------------------------------------------------------------- the server

class Server:
    def __init__(self, binary, secret_key, extra_env=None):
        self.binary = binary
        self.secret_key = secret_key
        self.extra_env = dict(extra_env or {})
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
        env.update(self.extra_env)
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


def mirror_iss_aud(app, claims):
    """Make a Flask app encode and expect the iss / aud our server's tokens carry (both
    optional in the contract), so that the two sides agree on them."""
    if "iss" in claims:
        app.config["JWT_ENCODE_ISSUER"] = claims["iss"]
        app.config["JWT_DECODE_ISSUER"] = claims["iss"]
    if "aud" in claims:
        app.config["JWT_ENCODE_AUDIENCE"] = claims["aud"]
        app.config["JWT_DECODE_AUDIENCE"] = claims["aud"]


def make_flask_cookie_app(secret_key):
    """Flask-JWT-Extended in browser mode: tokens in cookies only, double-submit CSRF with
    the CSRF values in cookies, default cookie and header names, plain http."""
    app = Flask("stores_api_interop_cookies")
    app.config.update(
        TESTING=True,
        JWT_SECRET_KEY=secret_key,
        JWT_ALGORITHM="HS256",
        JWT_TOKEN_LOCATION=["cookies"],
        JWT_COOKIE_CSRF_PROTECT=True,
        JWT_CSRF_IN_COOKIES=True,
        JWT_COOKIE_SECURE=False,
    )
    JWTManager(app)

    @app.route("/protected", methods=["GET", "POST"])
    @jwt_required()
    def protected():
        return jsonify(get_jwt())

    @app.post("/refresh")
    @jwt_required(refresh=True)
    def refresh():
        return jsonify(get_jwt())

    # Flask's own "login": the tokens a Flask-JWT-Extended service hands a browser, for a
    # user of our server named by id, set as cookies by Flask-JWT-Extended itself.
    @app.post("/cookie-login/<int:user_id>")
    def cookie_login(user_id):
        access = create_access_token(
            identity=str(user_id), fresh=True, additional_claims={"is_admin": False}
        )
        refresh_token = create_refresh_token(
            identity=str(user_id), additional_claims={"is_admin": False}
        )
        resp = jsonify({"login": True})
        set_access_cookies(resp, access)
        set_refresh_cookies(resp, refresh_token)
        return resp

    return app


def flask_cookie_call(app, method, path, cookies, csrf=None):
    """Call a Flask route with cookies (and X-CSRF-TOKEN when csrf is given), as a browser
    would; return (status, json)."""
    client = app.test_client()
    for name, value in cookies.items():
        client.set_cookie(name, value)
    headers = {"X-CSRF-TOKEN": csrf} if csrf is not None else {}
    resp = client.open(path, method=method, headers=headers)
    return resp.status_code, resp.get_json(silent=True)


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


# --------------------------------------------------------------------------- browser (cookie) mode

ACCESS_COOKIE = "access_token_cookie"
REFRESH_COOKIE = "refresh_token_cookie"
ACCESS_CSRF_COOKIE = "csrf_access_token"
REFRESH_CSRF_COOKIE = "csrf_refresh_token"
COOKIE_NAMES = (ACCESS_COOKIE, REFRESH_COOKIE, ACCESS_CSRF_COOKIE, REFRESH_CSRF_COOKIE)
CSRF_HEADER = "X-CSRF-TOKEN"

# The cookie-mode server's token lifetimes: not the defaults, so that the cookies'
# Max-Age is seen to follow the settings.
COOKIE_ACCESS_TTL = 600
COOKIE_REFRESH_TTL = 86400


class CookieInterop:
    """Browser mode against a server started with JWT_TOKEN_LOCATION=headers,cookies and
    JWT_COOKIE_SECURE=false, and Flask-JWT-Extended configured for cookies with the same
    key: our cookies (and their CSRF values) work in Flask, Flask's work with us."""

    def __init__(self, report, api, secret_key):
        self.r = report
        self.api = api
        self.secret_key = secret_key
        self.flask = None
        self.run_id = secrets.token_hex(4)
        self.user = {"username": f"cookies_{self.run_id}", "password": "user-password-123"}
        self.user_id = None
        self.login = None  # the Response of POST /login?delivery=cookie
        self.jar = {}  # name -> value of the cookies that login set

    # helpers -----------------------------------------------------------------

    def cookie_login(self, username, password):
        resp = self.api.request("POST", "/login?delivery=cookie",
                                {"username": username, "password": password})
        if resp.status != 200:
            raise RuntimeError(f"POST /login?delivery=cookie {username!r}: {resp.describe()}")
        return resp

    @staticmethod
    def jar_of(resp):
        """name -> value of the last Set-Cookie of each name (what a browser keeps)."""
        return {c.name: c.value for c in resp.set_cookies()}

    def expect_error(self, name, resp, status, error):
        self.r.check(
            f"{name} -> {status} {error}",
            resp.status == status and resp.error_code() == error,
            resp.describe(),
        )

    def expect_csrf_refused(self, name, resp, missing):
        """401 csrf_token_invalid, worded as Flask-JWT-Extended words its CSRF errors."""
        message = "Missing CSRF token." if missing else "CSRF double submit tokens do not match."
        want = {"code": 401, "status": "Unauthorized", "error": "csrf_token_invalid",
                "message": message}
        self.r.check(f"{name} -> 401 csrf_token_invalid \"{message}\"",
                     resp.status == 401 and resp.json == want, resp.describe())

    def expect_cleared(self, label, resp, names):
        """Each cookie in names is cleared: a Set-Cookie of that name, Max-Age=0, at the
        path it was set at."""
        named = cookies_by_name(resp.set_cookies())
        for name in names:
            path = "/refresh" if name == REFRESH_COOKIE else "/"
            cleared = [c for c in named.get(name, [])
                       if c.max_age == 0 and c.attrs.get("path") == path]
            self.r.check(
                f"{label} clears {name} (Max-Age=0, Path={path})",
                bool(cleared),
                "; ".join(c.raw for c in named.get(name, [])) or "no Set-Cookie of that name",
            )

    def flask_cookies(self, user_id):
        """Let Flask-JWT-Extended log a user in: its Set-Cookie headers, parsed."""
        resp = self.flask.test_client().post(f"/cookie-login/{user_id}")
        if resp.status_code != 200:
            raise RuntimeError(f"Flask /cookie-login: HTTP {resp.status_code}")
        return [parse_set_cookie(raw) for raw in resp.headers.getlist("Set-Cookie")]

    # setup ---------------------------------------------------------------------

    def setup(self):
        resp = self.api.request("POST", "/register", self.user)
        if resp.status != 201:
            raise RuntimeError(f"POST /register: {resp.describe()}")
        self.login = self.cookie_login(self.user["username"], self.user["password"])
        self.jar = self.jar_of(self.login)
        if ACCESS_COOKIE not in self.jar:
            raise RuntimeError(f"POST /login?delivery=cookie set no {ACCESS_COOKIE}: "
                               f"{self.login.headers.get_all('Set-Cookie')}")

        resp = self.api.request("GET", "/me", cookies={ACCESS_COOKIE: self.jar[ACCESS_COOKIE]})
        self.r.check(
            "our access cookie: GET /me without X-CSRF-TOKEN -> 200 the user",
            resp.status == 200 and isinstance(resp.json, dict)
            and resp.json.get("username") == self.user["username"],
            resp.describe(),
        )
        if resp.status != 200 or not isinstance(resp.json, dict):
            raise RuntimeError(f"GET /me with the access cookie: {resp.describe()}")
        self.user_id = resp.json["id"]

        self.flask = make_flask_cookie_app(self.secret_key)
        mirror_iss_aud(self.flask, unverified_claims(self.jar[ACCESS_COOKIE]))

        resp = self.api.request("POST", "/login?delivery=body", self.user)
        self.r.check(
            "POST /login?delivery=body on the cookie server -> the usual body, no cookies",
            resp.status == 200 and isinstance(resp.json, dict)
            and all(isinstance(resp.json.get(k), str) for k in ("access_token", "refresh_token"))
            and not resp.set_cookies(),
            f"{resp.describe()}; Set-Cookie: {resp.headers.get_all('Set-Cookie')}",
        )

    # direction 1: our cookies -> Flask ---------------------------------------------

    def ours_to_flask(self):
        resp = self.login
        named = cookies_by_name(resp.set_cookies())
        self.r.check(
            "POST /login?delivery=cookie sets each of the four cookies once",
            sorted(named) == sorted(COOKIE_NAMES) and all(len(v) == 1 for v in named.values()),
            "; ".join(resp.headers.get_all("Set-Cookie") or []) or "no Set-Cookie",
        )
        expected = {
            ACCESS_COOKIE: dict(httponly=True, path="/", max_age=COOKIE_ACCESS_TTL),
            REFRESH_COOKIE: dict(httponly=True, path="/refresh", max_age=COOKIE_REFRESH_TTL),
            ACCESS_CSRF_COOKIE: dict(httponly=False, path="/", max_age=COOKIE_ACCESS_TTL),
            REFRESH_CSRF_COOKIE: dict(httponly=False, path="/", max_age=COOKIE_REFRESH_TTL),
        }
        for name, want in expected.items():
            cookies = named.get(name)
            if not cookies:
                self.r.check(f"{name}: set", False, "no Set-Cookie of that name")
                continue
            problems = cookies[-1].problems(**want)
            self.r.check(
                f"{name}: {'HttpOnly' if want['httponly'] else 'not HttpOnly'}, "
                f"Path={want['path']}, SameSite=Lax, Max-Age={want['max_age']}, no Secure",
                not problems,
                "; ".join(problems) + f" [{cookies[-1].raw[:200]}]",
            )

        body = resp.json if isinstance(resp.json, dict) else {}
        self.r.check(
            "cookie login body: csrf_access_token, csrf_refresh_token (UUIDs), token_type "
            f"Bearer, expires_in {COOKIE_ACCESS_TTL}, no access_token / refresh_token",
            is_uuid(body.get("csrf_access_token")) and is_uuid(body.get("csrf_refresh_token"))
            and body.get("token_type") == "Bearer" and body.get("expires_in") == COOKIE_ACCESS_TTL
            and "access_token" not in body and "refresh_token" not in body,
            resp.describe(),
        )
        jar = self.jar
        self.r.check(
            "the body's CSRF values equal the csrf_access_token / csrf_refresh_token cookies",
            body.get("csrf_access_token") == jar.get(ACCESS_CSRF_COOKIE)
            and body.get("csrf_refresh_token") == jar.get(REFRESH_CSRF_COOKIE),
            json.dumps({"body": body, "cookies": {k: jar.get(k) for k in
                                                 (ACCESS_CSRF_COOKIE, REFRESH_CSRF_COOKIE)}}),
        )
        access_claims = unverified_claims(jar[ACCESS_COOKIE])
        refresh_claims = unverified_claims(jar[REFRESH_COOKIE]) if REFRESH_COOKIE in jar else {}
        self.r.check(
            "the csrf claim of each token cookie equals its CSRF cookie",
            access_claims.get("csrf") == jar.get(ACCESS_CSRF_COOKIE)
            and refresh_claims.get("csrf") == jar.get(REFRESH_CSRF_COOKIE)
            and jar.get(ACCESS_CSRF_COOKIE) != jar.get(REFRESH_CSRF_COOKIE),
            json.dumps({"access csrf claim": access_claims.get("csrf"),
                        "refresh csrf claim": refresh_claims.get("csrf")}),
        )

        access_csrf = jar.get(ACCESS_CSRF_COOKIE)
        refresh_csrf = jar.get(REFRESH_CSRF_COOKIE)
        access_jar = {ACCESS_COOKIE: jar[ACCESS_COOKIE]}
        status, claims = flask_cookie_call(self.flask, "POST", "/protected", access_jar,
                                           access_csrf)
        self.r.check(
            "Flask cookie @jwt_required() POST accepts our access cookie with our "
            "csrf_access_token in X-CSRF-TOKEN (sub, type access, fresh)",
            status == 200 and isinstance(claims, dict) and claims.get("sub") == str(self.user_id)
            and claims.get("type") == "access" and claims.get("fresh") is True,
            f"HTTP {status}: {claims}",
        )
        login_sid = claims.get("sid") if isinstance(claims, dict) else None
        status, body = flask_cookie_call(self.flask, "GET", "/protected", access_jar)
        self.r.check("Flask cookie @jwt_required() GET accepts our access cookie without CSRF",
                     status == 200, f"HTTP {status}: {body}")
        status, body = flask_cookie_call(self.flask, "POST", "/protected", access_jar)
        self.r.check(
            "Flask cookie POST with our access cookie, no X-CSRF-TOKEN -> 401 Missing CSRF token",
            status == 401 and isinstance(body, dict) and body.get("msg") == "Missing CSRF token",
            f"HTTP {status}: {body}",
        )
        status, body = flask_cookie_call(self.flask, "POST", "/protected", access_jar,
                                         str(uuid.uuid4()))
        self.r.check(
            "Flask cookie POST with our access cookie, wrong X-CSRF-TOKEN -> 401 "
            "CSRF double submit tokens do not match",
            status == 401 and isinstance(body, dict)
            and body.get("msg") == "CSRF double submit tokens do not match",
            f"HTTP {status}: {body}",
        )
        status, body = flask_cookie_call(self.flask, "POST", "/protected", access_jar, refresh_csrf)
        self.r.check("Flask cookie POST with our access cookie and the refresh CSRF value -> 401",
                     status == 401, f"HTTP {status}: {body}")

        refresh_jar = {REFRESH_COOKIE: jar.get(REFRESH_COOKIE, "")}
        status, claims = flask_cookie_call(self.flask, "POST", "/refresh", refresh_jar,
                                           refresh_csrf)
        self.r.check(
            "Flask cookie @jwt_required(refresh=True) accepts our refresh cookie with our "
            "csrf_refresh_token (type refresh, same sid)",
            status == 200 and isinstance(claims, dict) and claims.get("type") == "refresh"
            and claims.get("sub") == str(self.user_id) and claims.get("sid") == login_sid,
            f"HTTP {status}: {claims}",
        )
        status, body = flask_cookie_call(self.flask, "POST", "/refresh", refresh_jar)
        self.r.check("Flask cookie refresh route, our refresh cookie without X-CSRF-TOKEN -> 401",
                     status == 401, f"HTTP {status}: {body}")

        # Our own refresh by cookie: the browser sends every cookie whose path matches.
        resp = self.api.request("POST", "/refresh", cookies=jar,
                                headers={CSRF_HEADER: refresh_csrf})
        new_jar = self.jar_of(resp)
        body = resp.json if isinstance(resp.json, dict) else {}
        ok = self.r.check(
            "POST /refresh with our refresh cookie and csrf_refresh_token -> 200, four new "
            "cookies, body with new CSRF values equal to them and no tokens",
            resp.status == 200 and all(n in new_jar for n in COOKIE_NAMES)
            and body.get("csrf_access_token") == new_jar.get(ACCESS_CSRF_COOKIE)
            and body.get("csrf_refresh_token") == new_jar.get(REFRESH_CSRF_COOKIE)
            and body.get("csrf_access_token") != access_csrf
            and "access_token" not in body and "refresh_token" not in body,
            f"{resp.describe()}; Set-Cookie names: {sorted(new_jar)}",
        )
        if ok:
            status, claims = flask_cookie_call(
                self.flask, "POST", "/protected", {ACCESS_COOKIE: new_jar[ACCESS_COOKIE]},
                new_jar[ACCESS_CSRF_COOKIE])
            self.r.check(
                "Flask cookie POST accepts the refreshed access cookie with its new CSRF "
                "value: fresh == False, same sid",
                status == 200 and isinstance(claims, dict) and claims.get("fresh") is False
                and claims.get("sid") == login_sid,
                f"HTTP {status}: {claims}",
            )

    # direction 2: Flask's cookies -> ours ---------------------------------------------

    def flask_to_ours(self):
        set_cookies = self.flask_cookies(self.user_id)
        named = cookies_by_name(set_cookies)
        self.r.check(
            "Flask set_access_cookies / set_refresh_cookies set the four cookies",
            all(n in named for n in COOKIE_NAMES),
            "; ".join(c.raw[:80] for c in set_cookies),
        )
        fje = {c.name: c.value for c in set_cookies}
        access_csrf = fje.get(ACCESS_CSRF_COOKIE)
        refresh_csrf = fje.get(REFRESH_CSRF_COOKIE)
        self.r.check(
            "Flask's CSRF cookies equal the csrf claims of its token cookies",
            is_uuid(access_csrf) and is_uuid(refresh_csrf)
            and unverified_claims(fje[ACCESS_COOKIE]).get("csrf") == access_csrf
            and unverified_claims(fje[REFRESH_COOKIE]).get("csrf") == refresh_csrf,
            json.dumps({ACCESS_CSRF_COOKIE: access_csrf, REFRESH_CSRF_COOKIE: refresh_csrf}),
        )
        # What a browser sends to a path other than /refresh: every cookie but the refresh one.
        browser = {n: fje[n] for n in (ACCESS_COOKIE, ACCESS_CSRF_COOKIE, REFRESH_CSRF_COOKIE)}

        resp = self.api.request("GET", "/me", cookies=browser)
        self.r.check(
            "Flask access cookie: GET /me without X-CSRF-TOKEN -> 200 that user",
            resp.status == 200 and isinstance(resp.json, dict)
            and resp.json.get("id") == self.user_id,
            resp.describe(),
        )
        resp = self.api.request("POST", "/store", {"name": f"cookies {self.run_id} no csrf"},
                                cookies=browser)
        self.expect_csrf_refused("Flask access cookie: POST /store without X-CSRF-TOKEN",
                                 resp, missing=True)
        resp = self.api.request("POST", "/store", {"name": f"cookies {self.run_id} wrong csrf"},
                                cookies=browser, headers={CSRF_HEADER: str(uuid.uuid4())})
        self.expect_csrf_refused("Flask access cookie: POST /store with a wrong X-CSRF-TOKEN",
                                 resp, missing=False)
        resp = self.api.request("POST", "/store", {"name": f"cookies {self.run_id} refresh csrf"},
                                cookies=browser, headers={CSRF_HEADER: refresh_csrf})
        self.expect_csrf_refused("Flask access cookie: POST /store with the refresh CSRF value",
                                 resp, missing=False)
        store_name = f"cookies {self.run_id}"
        resp = self.api.request("POST", "/store", {"name": store_name}, cookies=browser,
                                headers={CSRF_HEADER: access_csrf})
        self.r.check(
            "Flask fresh access cookie: POST /store with Flask's csrf_access_token -> 201",
            resp.status == 201 and isinstance(resp.json, dict)
            and resp.json.get("name") == store_name,
            resp.describe(),
        )

        # A second Flask login: CSRF refusals at /refresh must leave its refresh token usable.
        spare = {c.name: c.value for c in self.flask_cookies(self.user_id)}
        spare_refresh = {REFRESH_COOKIE: spare[REFRESH_COOKIE]}
        resp = self.api.request("POST", "/refresh", cookies=spare_refresh)
        self.expect_csrf_refused("Flask refresh cookie: POST /refresh without X-CSRF-TOKEN",
                                 resp, missing=True)
        resp = self.api.request("POST", "/refresh", cookies=spare_refresh,
                                headers={CSRF_HEADER: spare[ACCESS_CSRF_COOKIE]})
        self.expect_csrf_refused("Flask refresh cookie: POST /refresh with the access CSRF value",
                                 resp, missing=False)

        resp = self.api.request("POST", "/refresh", cookies=spare_refresh,
                                headers={CSRF_HEADER: spare[REFRESH_CSRF_COOKIE]})
        self.r.check(
            "after those two refusals, the same Flask refresh cookie with its csrf_refresh_token: "
            "POST /refresh -> 200",
            resp.status == 200, resp.describe(),
        )

        # The browser sends all four to /refresh (its path matches every cookie's).
        resp = self.api.request("POST", "/refresh", cookies=fje,
                                headers={CSRF_HEADER: refresh_csrf})
        new_jar = self.jar_of(resp)
        body = resp.json if isinstance(resp.json, dict) else {}
        ok = self.r.check(
            "Flask refresh cookie: POST /refresh with Flask's csrf_refresh_token -> 200, sets "
            "the four cookies, body CSRF values equal them",
            resp.status == 200 and all(n in new_jar for n in COOKIE_NAMES)
            and body.get("csrf_access_token") == new_jar.get(ACCESS_CSRF_COOKIE)
            and body.get("csrf_refresh_token") == new_jar.get(REFRESH_CSRF_COOKIE)
            and "access_token" not in body and "refresh_token" not in body,
            f"{resp.describe()}; Set-Cookie names: {sorted(new_jar)}",
        )
        if ok:
            new_access = {ACCESS_COOKIE: new_jar[ACCESS_COOKIE]}
            status, claims = flask_cookie_call(self.flask, "POST", "/protected", new_access,
                                               new_jar[ACCESS_CSRF_COOKIE])
            self.r.check(
                "Flask cookie POST accepts the access cookie from that refresh: same sub, "
                "fresh == False",
                status == 200 and isinstance(claims, dict)
                and claims.get("sub") == str(self.user_id) and claims.get("fresh") is False,
                f"HTTP {status}: {claims}",
            )
            resp = self.api.request("POST", "/store", {"name": f"cookies {self.run_id} refreshed"},
                                    cookies=new_access,
                                    headers={CSRF_HEADER: new_jar[ACCESS_CSRF_COOKIE]})
            self.expect_error("refreshed (not fresh) access cookie: POST /store", resp, 401,
                              "fresh_token_required")

        resp = self.api.request("POST", "/refresh", cookies={REFRESH_COOKIE: fje[REFRESH_COOKIE]},
                                headers={CSRF_HEADER: refresh_csrf})
        self.expect_error("the same Flask refresh cookie again: POST /refresh", resp, 401,
                          "token_revoked")
        self.expect_cleared("that refused refresh", resp, [REFRESH_COOKIE])

        # The Authorization header is judged alone: no CSRF value needed.
        with self.flask.app_context():
            header_token = create_access_token(
                identity=str(self.user_id), fresh=True, additional_claims={"is_admin": False}
            )
        resp = self.api.request("POST", "/store", {"name": f"cookies {self.run_id} header"},
                                token=header_token)
        self.r.check(
            "Flask access token in the Authorization header: POST /store without "
            "X-CSRF-TOKEN -> 201",
            resp.status == 201, resp.describe(),
        )

        # Logging out with Flask's cookies (no sid): its access token is revoked.
        logout_cookies = {c.name: c.value for c in self.flask_cookies(self.user_id)}
        browser = {n: logout_cookies[n] for n in (ACCESS_COOKIE, ACCESS_CSRF_COOKIE,
                                                   REFRESH_CSRF_COOKIE)}
        resp = self.api.request("POST", "/logout", cookies=browser,
                                headers={CSRF_HEADER: logout_cookies[ACCESS_CSRF_COOKIE]})
        self.r.check("Flask access cookie: POST /logout with its CSRF value -> 200",
                     resp.status == 200, resp.describe())
        self.expect_cleared("that logout", resp, COOKIE_NAMES)
        resp = self.api.request("GET", "/me", cookies=browser)
        self.expect_error("that Flask access cookie after the logout: GET /me", resp, 401,
                          "token_revoked")

    # logout ---------------------------------------------------------------------------

    def logout(self):
        resp = self.cookie_login(self.user["username"], self.user["password"])
        jar = self.jar_of(resp)
        browser = {n: jar[n] for n in (ACCESS_COOKIE, ACCESS_CSRF_COOKIE, REFRESH_CSRF_COOKIE)}

        resp = self.api.request("POST", "/logout", cookies=browser)
        self.expect_csrf_refused("our access cookie: POST /logout without X-CSRF-TOKEN",
                                 resp, missing=True)
        resp = self.api.request("POST", "/logout", cookies=browser,
                                headers={CSRF_HEADER: jar[ACCESS_CSRF_COOKIE]})
        self.r.check("our access cookie: POST /logout with csrf_access_token -> 200",
                     resp.status == 200, resp.describe())
        self.expect_cleared("POST /logout", resp, COOKIE_NAMES)

        resp = self.api.request("GET", "/me", cookies=browser)
        self.expect_error("the logged-out access cookie: GET /me", resp, 401, "token_revoked")
        resp = self.api.request("POST", "/refresh", cookies=jar,
                                headers={CSRF_HEADER: jar[REFRESH_CSRF_COOKIE]})
        self.expect_error("the logged-out refresh cookie: POST /refresh", resp, 401,
                          "token_revoked")
        self.expect_cleared("that refused refresh", resp, [REFRESH_COOKIE])


def with_server(report, binary, secret_key, extra_env, label, checks):
    """Start a server with extra_env, run checks(server) once it is healthy, stop it; its
    log tail goes to stderr when it did not start or a check failed meanwhile."""
    server = Server(str(binary), secret_key, extra_env)
    failed_before = report.failed
    try:
        server.start()
        problem = server.wait_healthy()
        if report.check(f"{label} starts and GET /health -> 200 (port {server.port})",
                        problem is None, problem or ""):
            checks(server)
        if report.failed > failed_before:
            tail = server.log_tail()
            if tail:
                print(f"# {label} log (last lines):\n" + tail, file=sys.stderr)
    finally:
        server.stop()


def main(argv):
    binary = Path(argv[1]) if len(argv) > 1 else REPO_ROOT / "target" / "debug" / "stores-api"
    binary = binary.resolve()
    report = Report()

    if not binary.is_file() or not os.access(binary, os.X_OK):
        report.check(f"server binary exists at {binary}", False, "build it with cargo build --bin stores-api")
        print(f"{report.passed} passed, {report.failed} failed")
        return 1

    secret_key = secrets.token_hex(32)  # 64 characters

    def header_checks(server):
        interop = Interop(report, Api(server.base_url), secret_key)
        report.section("setup: register and log in", interop.setup)
        if interop.flask is not None and interop.admin_id is not None:
            report.section("direction 1: stores-api tokens -> Flask-JWT-Extended",
                           interop.ours_to_flask)
            report.section("direction 2: Flask-JWT-Extended tokens -> stores-api",
                           interop.flask_to_ours)

    def cookie_checks(server):
        cookies = CookieInterop(report, Api(server.base_url), secret_key)
        report.section("cookies setup: register and log in with ?delivery=cookie", cookies.setup)
        if cookies.flask is not None and cookies.user_id is not None:
            report.section("cookies direction 1: stores-api cookies -> Flask-JWT-Extended",
                           cookies.ours_to_flask)
            report.section("cookies direction 2: Flask-JWT-Extended cookies -> stores-api",
                           cookies.flask_to_ours)
            report.section("cookies: POST /logout clears the four cookies", cookies.logout)

    with_server(report, binary, secret_key, {}, "server", header_checks)
    # Browser mode: a second instance (its own database) reading both the header and the
    # cookies, over plain http.
    with_server(
        report, binary, secret_key,
        {
            "JWT_TOKEN_LOCATION": "headers,cookies",
            "JWT_COOKIE_SECURE": "false",
            "JWT_ACCESS_TOKEN_EXPIRES": str(COOKIE_ACCESS_TTL),
            "JWT_REFRESH_TOKEN_EXPIRES": str(COOKIE_REFRESH_TTL),
        },
        "cookie-mode server (JWT_TOKEN_LOCATION=headers,cookies, JWT_COOKIE_SECURE=false)",
        cookie_checks,
    )

    print(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
