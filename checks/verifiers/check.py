#!/usr/bin/env python3
"""JWKS verifier check for stores-api: libraries written elsewhere verify this service's
public-key tokens, through its JWKS or a shared key pair, against the real binary.

  1. EdDSA, ES256 and RS256 with the keys kept in the database (one SQLite server per
     algorithm): the JWKS is public-only, names kid/alg/use, is cacheable (max-age, ETag,
     304); PyJWT's PyJWKClient and jose's createRemoteJWKSet verify a login's access
     token; a token with an altered payload fails both; an HS256 token signed with the
     public key's bytes (algorithm confusion) is refused by the server.
  2. Flask-JWT-Extended with RS256 and a key pair made here, both ways: its
     @jwt_required() accepts our access token, and our server accepts the token it mints
     (no kid: verified with JWT_PUBLIC_KEY).
  3. A key rotation with two instances on one PostgreSQL database: while both keep
     minting tokens, `stores-api keys generate` then `keys rotate --wait`; two verifiers
     with caching JWKS (PyJWKClient, jose) verify every token and an early one, and no
     verification fails, not even by verifiers whose copy of an instance's JWKS was
     taken the moment before that instance published the next key.

Usage: check.py [PATH_TO_BINARY]   (default: target/debug/stores-api)
Environment: VERIFIERS_DATABASE_URL, a PostgreSQL database of its own for part 3 (run.sh
makes one and drops it afterwards); VERIFIERS_PARTS, the parts to run (default
"algorithms,flask,rotation"); VERIFIERS_STAGGER, seconds between the starts of the
rotation's two instances (default 1.0).

Prints one "ok - ..." / "FAIL - ..." line per check, then "N passed, M failed".
Exits 1 if any check failed. HTTP to our server uses only the standard library; the jose
side runs in verify.mjs, one Node process for the whole run.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask import Flask, jsonify
from flask_jwt_extended import JWTManager, create_access_token, get_jwt, jwt_required
from jwt import PyJWKClient

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
sys.path.insert(0, str(REPO_ROOT / "checks" / "lib"))
from harness import Report, Response, free_port  # noqa: E402 - the shared check harness
STARTUP_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 10.0
JWKS_PATH = "/.well-known/jwks.json"
METADATA_PATH = "/.well-known/oauth-authorization-server"
PASSWORD = "verifier-password-1"
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k", "oth")
KEY_SHAPES = {  # algorithm -> (kty, crv, the members RFC 7638 hashes)
    "EdDSA": ("OKP", "Ed25519", ("crv", "kty", "x")),
    "ES256": ("EC", "P-256", ("crv", "kty", "x", "y")),
    "RS256": ("RSA", None, ("e", "kty", "n")),
}
# The rotation: the JWKS max-age (and the publication time before a rotation), the
# pause between two rounds of the loop, and how long the instances may take to follow.
ROTATION_MAX_AGE = 4
ROUND_PAUSE_S = 0.2
FOLLOW_TIMEOUT_S = 5.0
# Instance B starts this long after A is up, so that the two read the key table at
# different moments (each every 2 s), as independent instances do.
INSTANCE_STAGGER_S = float(os.environ.get("VERIFIERS_STAGGER", "1.0"))


# --------------------------------------------------------------------------- HTTP

def http(method, url, body=None, token=None, headers=None):
    data = None
    sent = {"Accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        sent["Content-Type"] = "application/json"
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    sent.update(headers or {})
    req = urllib.request.Request(url, data=data, headers=sent, method=method)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
            return Response(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return Response(err.code, err.headers, err.read())


# --------------------------------------------------------------------------- the server

def server_env(extra):
    """The caller's environment without any setting of ours (a JWT_* or DATABASE_URL left
    in the shell must not change the run), plus the test settings and `extra`."""
    env = {
        k: v for k, v in os.environ.items()
        if not (k.startswith(("JWT_", "JWKS_", "ADMIN_")) or k in ("DATABASE_URL", "PORT"))
    }
    env.update({"APP_ENV": "test", "HOST": "127.0.0.1", "BCRYPT_COST": "4", "RUST_LOG": "warn"})
    env.update(extra)
    return env


class Server:
    def __init__(self, binary, label, extra_env, database_url=None):
        self.binary = binary
        self.label = label
        self.tmpdir = tempfile.mkdtemp(prefix="stores-api-verifiers-")
        self.port = free_port()
        self.database_url = database_url or os.path.join(self.tmpdir, "verifiers.db")
        self.env = server_env({
            "PORT": str(self.port),
            "DATABASE_URL": self.database_url,
            "DATA_DIR": self.tmpdir,
            **extra_env,
        })
        self.log_path = os.path.join(self.tmpdir, "server.log")
        self.proc = None
        self.log_file = None

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def url(self, path):
        return self.base_url + path

    def start(self):
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary, "serve"], cwd=str(REPO_ROOT), env=self.env,
            stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT,
        )

    def wait_healthy(self):
        """None once GET /health answers 200, else why not."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"the server exited with status {self.proc.returncode}"
            try:
                resp = http("GET", self.url("/health"))
                if resp.status == 200:
                    return None
                last = resp.describe()
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        return f"/health not 200 within {STARTUP_TIMEOUT_S:.0f}s (last: {last})"

    def cli(self, *args, timeout=60):
        """`stores-api ARGS` with this server's settings; (exit status, stdout + stderr)."""
        env = dict(self.env)
        env.pop("PORT", None)
        done = subprocess.run(
            [self.binary, *args], cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout,
        )
        return done.returncode, one_line(done.stdout + done.stderr)

    def cli_start(self, *args):
        """The same, in the background: a Popen whose output is read on completion."""
        env = dict(self.env)
        env.pop("PORT", None)
        return subprocess.Popen(
            [self.binary, *args], cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )

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


def one_line(text):
    """A command's output on one report line."""
    return " / ".join(line.strip() for line in text.strip().splitlines() if line.strip())


def run_with_servers(report, servers, checks, stagger=0.0):
    """Start the servers one after the other (each healthy, then `stagger` seconds, before
    the next), run checks(*servers), stop them all; log tails go to stderr when a check
    failed."""
    failed_before = report.failed
    try:
        for index, server in enumerate(servers):
            if index:
                time.sleep(stagger)
            server.start()
            problem = server.wait_healthy()
            if not report.check(f"{server.label} starts and GET /health -> 200 (port {server.port})",
                                problem is None, problem or ""):
                return
        checks(*servers)
    finally:
        if report.failed > failed_before:
            for server in servers:
                tail = server.log_tail()
                if tail:
                    print(f"# {server.label} log (last lines):\n{tail}", file=sys.stderr)
        for server in servers:
            server.stop()


# --------------------------------------------------------------------------- accounts

def register_and_login(server, username):
    """Register `username` at `server`, log in; (user id, access token)."""
    resp = http("POST", server.url("/register"), {"username": username, "password": PASSWORD})
    if resp.status != 201:
        raise RuntimeError(f"POST /register {username!r}: {resp.describe()}")
    access = login(server, username)
    me = http("GET", server.url("/me"), token=access)
    if me.status != 200 or not isinstance(me.json, dict):
        raise RuntimeError(f"GET /me: {me.describe()}")
    return me.json["id"], access


def login(server, username):
    resp = http("POST", server.url("/login"), {"username": username, "password": PASSWORD})
    if resp.status != 200 or not isinstance(resp.json, dict):
        raise RuntimeError(f"POST /login {username!r} at {server.label}: {resp.describe()}")
    return resp.json["access_token"]


# --------------------------------------------------------------------------- JOSE pieces

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_parts(token):
    header, payload, signature = token.split(".")
    return (json.loads(b64url_decode(header)), json.loads(b64url_decode(payload)), signature)


def thumbprint(jwk, members):
    """RFC 7638: SHA-256 of the required members, sorted, without whitespace."""
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def hs256(header, payload_segment, secret):
    """An HS256 JWS over `header` and an already encoded payload, with `secret` as the HMAC key."""
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + payload_segment
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


class CountingJWKClient(PyJWKClient):
    """PyJWKClient as it is, counting the times it fetches the JWKS (the cache works)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fetches = 0

    def fetch_data(self):
        self.fetches += 1
        return super().fetch_data()


def py_verify(client, token, alg):
    """PyJWKClient picks the key by kid; jwt.decode checks it. (claims, None) or (None, why)."""
    try:
        key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=[alg],
                            options={"require": ["exp", "iat", "sub"]})
        return claims, None
    except Exception as exc:  # noqa: BLE001 - any refusal is the answer
        return None, f"{type(exc).__name__}: {exc}"


class Jose:
    """verify.mjs, the jose side: one Node process, one JSON line each way per request."""

    def __init__(self):
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            ["node", str(HERE / "verify.mjs")], cwd=str(HERE), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1,
        )

    def request(self, **fields):
        with self.lock:
            self.proc.stdin.write(json.dumps(fields) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("verify.mjs ended")
        return json.loads(line)

    def open(self, name, jwks_url, cache_max_age_ms=None):
        answer = self.request(op="open", set=name, jwks=jwks_url, cacheMaxAge=cache_max_age_ms)
        if not answer.get("ok"):
            raise RuntimeError(f"verify.mjs open: {answer}")

    def verify(self, name, token, alg):
        """(payload, None) or (None, why)."""
        answer = self.request(op="verify", set=name, token=token, alg=alg)
        if answer.get("ok"):
            return answer["payload"], None
        return None, f"{answer.get('code')}: {answer.get('message')}"

    def fetches(self, name):
        return self.request(op="stats", set=name).get("fetches")

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


# --------------------------------------------------------------------------- part 1

def check_algorithm(report, binary, jose, alg):
    encryption_key = secrets.token_hex(32)
    max_age = 120
    server = Server(binary, f"{alg} server", {
        "JWT_ALGORITHM": alg,
        "JWT_KEY_ENCRYPTION_KEY": encryption_key,
        "JWKS_MAX_AGE": str(max_age),
    })
    kty, crv, members = KEY_SHAPES[alg]

    def checks(server):
        meta = http("GET", server.url(METADATA_PATH))
        meta_json = meta.json if isinstance(meta.json, dict) else {}
        jwks_url = meta_json.get("jwks_uri") or server.url(JWKS_PATH)
        report.check(
            f"{alg}: GET {METADATA_PATH} -> 200, jwks_uri {server.base_url}{JWKS_PATH}, "
            f"{alg} among token_signing_alg_values_supported",
            meta.status == 200 and jwks_url == server.url(JWKS_PATH)
            and alg in (meta_json.get("token_signing_alg_values_supported") or []),
            meta.describe(),
        )

        resp = http("GET", jwks_url)
        keys = resp.json.get("keys") if isinstance(resp.json, dict) else None
        report.check(f"{alg}: GET {JWKS_PATH} -> 200 with one key",
                     resp.status == 200 and isinstance(keys, list) and len(keys) == 1,
                     resp.describe())
        jwk = keys[0] if keys else {}
        leaked = [m for m in PRIVATE_MEMBERS if m in jwk]
        report.check(f"{alg}: the JWK has no private member ({', '.join(PRIVATE_MEMBERS)})",
                     bool(jwk) and not leaked, f"present: {leaked}")
        report.check(
            f"{alg}: the JWK is kty {kty}{f', crv {crv}' if crv else ''}, alg {alg}, use sig, "
            "and its kid is its RFC 7638 thumbprint",
            jwk.get("kty") == kty and jwk.get("crv") == crv and jwk.get("alg") == alg
            and jwk.get("use") == "sig" and all(m in jwk for m in members)
            and jwk.get("kid") == thumbprint(jwk, members),
            json.dumps(jwk)[:300],
        )
        cache_control = resp.headers.get("Cache-Control", "")
        etag = resp.headers.get("ETag")
        report.check(
            f"{alg}: the JWKS has Cache-Control: public, max-age={max_age} and an ETag",
            re.fullmatch(rf"public,\s*max-age={max_age}", cache_control.strip()) is not None
            and bool(etag),
            f"Cache-Control {cache_control!r}, ETag {etag!r}",
        )
        again = http("GET", jwks_url, headers={"If-None-Match": etag or '"none"'})
        report.check(
            f"{alg}: GET {JWKS_PATH} with If-None-Match: <its ETag> -> 304, no body, same ETag",
            again.status == 304 and again.raw == b"" and again.headers.get("ETag") == etag,
            f"{again.describe()}, ETag {again.headers.get('ETag')!r}",
        )
        other = http("GET", jwks_url, headers={"If-None-Match": '"another"'})
        report.check(f"{alg}: If-None-Match with another ETag -> 200 with the set",
                     other.status == 200 and other.json == resp.json, other.describe())

        user_id, access = register_and_login(server, f"verifier_{alg.lower()}_{secrets.token_hex(3)}")
        header, claims, _ = token_parts(access)
        report.check(f"{alg}: a login's access token has header alg {alg} and the JWK's kid",
                     header.get("alg") == alg and header.get("kid") == jwk.get("kid"),
                     json.dumps(header))

        client = CountingJWKClient(jwks_url)
        got, why = py_verify(client, access, alg)
        report.check(
            f"{alg}: PyJWT PyJWKClient(jwks_uri) + jwt.decode(algorithms=[{alg}]) verifies it "
            "(sub, type access, fresh)",
            got is not None and got.get("sub") == str(user_id) and got.get("type") == "access"
            and got.get("fresh") is True,
            why or json.dumps(got),
        )
        jose.open(f"single-{alg}", jwks_url)
        got, why = jose.verify(f"single-{alg}", access, alg)
        report.check(
            f"{alg}: jose createRemoteJWKSet(jwks_uri) + jwtVerify verifies it (sub, type access)",
            got is not None and got.get("sub") == str(user_id) and got.get("type") == "access",
            why or json.dumps(got),
        )

        # The same signature over another payload: an admin claim and another user.
        header_segment, _, signature = access.split(".")
        altered_claims = dict(claims, sub=str(user_id + 1), is_admin=True)
        altered = ".".join([header_segment,
                            b64url(json.dumps(altered_claims, separators=(",", ":")).encode()),
                            signature])
        got, why = py_verify(client, altered, alg)
        report.check(f"{alg}: the token with an altered payload (sub, is_admin): PyJWT refuses it "
                     "(InvalidSignatureError)",
                     got is None and why.startswith("InvalidSignatureError"), why or json.dumps(got))
        got, why = jose.verify(f"single-{alg}", altered, alg)
        report.check(f"{alg}: the token with an altered payload: jose refuses it "
                     "(ERR_JWS_SIGNATURE_VERIFICATION_FAILED)",
                     got is None and why.startswith("ERR_JWS_SIGNATURE_VERIFICATION_FAILED"),
                     why or json.dumps(got))
        resp = http("GET", server.url("/me"), token=altered)
        report.check(f"{alg}: the altered token on GET /me -> 401 invalid_token",
                     resp.status == 401 and resp.error_code() == "invalid_token", resp.describe())

        resp = http("GET", server.url("/me"), token=access)
        report.check(f"{alg}: the genuine token on GET /me -> 200 that user",
                     resp.status == 200 and isinstance(resp.json, dict)
                     and resp.json.get("id") == user_id, resp.describe())

        # The same claims signed by another key of the same algorithm, made here.
        stranger = other_private_key(alg)
        for name, kid in (("the server key's kid", jwk["kid"]), ("a kid of its own", "another-key")):
            forged = jwt.encode(claims, stranger, algorithm=alg, headers={"kid": kid})
            resp = http("GET", server.url("/me"), token=forged)
            report.check(
                f"{alg}: the same claims signed with another {alg} key, {name}: GET /me -> 401 invalid_token",
                resp.status == 401 and resp.error_code() == "invalid_token", resp.describe(),
            )

        # Algorithm confusion: HS256 with the public key's own bytes as the HMAC secret,
        # over the genuine payload, with and without the key's kid.
        public_key = jwt.PyJWK(jwk).key
        pem = public_key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
        der = public_key.public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
        member = "n" if kty == "RSA" else "x"
        secrets_tried = [
            (f"the JWK's {member} as text", jwk[member].encode("ascii"), True),
            (f"the JWK's {member} decoded", b64url_decode(jwk[member]), True),
            ("the public key's PEM", pem, True),
            ("the public key's DER", der, True),
            ("the public key's PEM", pem, False),
            (f"the JWK's {member} as text", jwk[member].encode("ascii"), False),
        ]
        payload_segment = access.split(".")[1]
        for name, secret, with_kid in secrets_tried:
            forged_header = {"alg": "HS256", "typ": "JWT"}
            if with_kid:
                forged_header["kid"] = jwk["kid"]
            forged = hs256(forged_header, payload_segment, secret)
            resp = http("GET", server.url("/me"), token=forged)
            report.check(
                f"{alg}: attack: HS256 token signed with {name} as HMAC secret, "
                f"{'with the kid' if with_kid else 'without kid'}: GET /me -> 401 invalid_token",
                resp.status == 401 and resp.error_code() == "invalid_token", resp.describe(),
            )

    run_with_servers(report, [server], checks)


def other_private_key(alg):
    """A private key of `alg` that the server has never seen."""
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --------------------------------------------------------------------------- part 2

def rsa_pair():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode("ascii")
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    return private, private_pem, public_pem


def make_flask_app(private_pem, public_pem):
    app = Flask("stores_api_verifiers")
    app.config.update(
        TESTING=True,
        JWT_ALGORITHM="RS256",
        JWT_PRIVATE_KEY=private_pem,
        JWT_PUBLIC_KEY=public_pem,
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

    return app


def flask_call(app, path, token):
    resp = app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})
    return resp.status_code, resp.get_json(silent=True)


def check_flask_rs256(report, binary):
    private, private_pem, public_pem = rsa_pair()
    _, other_private_pem, other_public_pem = rsa_pair()
    server = Server(binary, "RS256 server with JWT_PRIVATE_KEY/JWT_PUBLIC_KEY (PEM text)", {
        "JWT_ALGORITHM": "RS256",
        "JWT_PRIVATE_KEY": private_pem,
        "JWT_PUBLIC_KEY": public_pem,
    })

    def checks(server):
        numbers = private.public_key().public_numbers()
        ours = {"kty": "RSA",
                "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"))}
        resp = http("GET", server.url(JWKS_PATH))
        keys = resp.json.get("keys") if isinstance(resp.json, dict) else None
        jwk = keys[0] if isinstance(keys, list) and len(keys) == 1 else {}
        report.check(
            "RS256 (fixed pair): the JWKS holds the given public key (n, e), no private "
            "member, kid = its RFC 7638 thumbprint",
            jwk.get("n") == ours["n"] and jwk.get("e") == ours["e"]
            and not any(m in jwk for m in PRIVATE_MEMBERS)
            and jwk.get("kid") == thumbprint(ours, ("e", "kty", "n")),
            resp.describe(),
        )

        user_id, access = register_and_login(server, f"verifier_fje_{secrets.token_hex(3)}")
        header, _, _ = token_parts(access)
        report.check("RS256 (fixed pair): our access token has alg RS256 and that kid",
                     header.get("alg") == "RS256" and header.get("kid") == jwk.get("kid"),
                     json.dumps(header))

        # Direction 1: our token -> Flask-JWT-Extended (which ignores kid).
        flask_app = make_flask_app(private_pem, public_pem)
        status, claims = flask_call(flask_app, "/protected", access)
        report.check(
            "Flask-JWT-Extended RS256 @jwt_required() accepts our access token (sub, type access)",
            status == 200 and isinstance(claims, dict) and claims.get("sub") == str(user_id)
            and claims.get("type") == "access",
            f"HTTP {status}: {claims}",
        )
        status, claims = flask_call(flask_app, "/fresh", access)
        report.check("Flask-JWT-Extended RS256 @jwt_required(fresh=True) accepts it (a login's token is fresh)",
                     status == 200, f"HTTP {status}: {claims}")
        stranger = make_flask_app(other_private_pem, other_public_pem)
        status, claims = flask_call(stranger, "/protected", access)
        report.check("control: Flask-JWT-Extended with another RSA key refuses our token",
                     status in (401, 422), f"HTTP {status}: {claims}")

        # Direction 2: Flask-JWT-Extended's token (no kid) -> our server (JWT_PUBLIC_KEY).
        with flask_app.app_context():
            minted = create_access_token(identity=str(user_id), fresh=True)
        header, _, _ = token_parts(minted)
        report.check("Flask-JWT-Extended's RS256 token has no kid",
                     header.get("alg") == "RS256" and "kid" not in header, json.dumps(header))
        resp = http("GET", server.url("/me"), token=minted)
        report.check("our server accepts Flask-JWT-Extended's RS256 access token: GET /me -> 200 that user",
                     resp.status == 200 and isinstance(resp.json, dict)
                     and resp.json.get("id") == user_id, resp.describe())
        with stranger.app_context():
            foreign = create_access_token(identity=str(user_id), fresh=True)
        resp = http("GET", server.url("/me"), token=foreign)
        report.check("control: a token Flask-JWT-Extended signs with another RSA key: GET /me -> 401 invalid_token",
                     resp.status == 401 and resp.error_code() == "invalid_token", resp.describe())

    run_with_servers(report, [server], checks)


# --------------------------------------------------------------------------- part 3

class CachingVerifiers:
    """A PyJWKClient and a jose resolver that keep the JWKS they fetched for the max-age,
    made once and used for every token from then on, as a service verifying this one's
    tokens would. With both libraries' defaults, a kid missing from the cached set is a
    failure (their 30 s cooldown after each fetch forbids an early refetch)."""

    def __init__(self, jose, name, py_url, jose_url):
        self.name = name
        self.py = CountingJWKClient(py_url, lifespan=ROTATION_MAX_AGE)
        self.jose = jose
        self.set = name
        jose.open(name, jose_url, ROTATION_MAX_AGE * 1000)
        self.verified = 0
        self.failures = []  # (seconds into the run, what, why)

    def verify(self, at, what, token, user_id, alg="EdDSA"):
        for library, (claims, why) in (
            ("PyJWKClient", py_verify(self.py, token, alg)),
            ("jose", self.jose.verify(self.set, token, alg)),
        ):
            self.verified += 1
            if claims is None or claims.get("sub") != str(user_id):
                kid = token_parts(token)[0].get("kid")
                self.failures.append((at, f"{library} refused {what} (kid {kid})",
                                      why or json.dumps(claims)))

    def cached_kids(self):
        """The kids each library holds now: (PyJWKClient's, jose's)."""
        py_kids = [key.key_id for key in self.py.get_jwk_set().keys]
        return py_kids, self.jose.request(op="stats", set=self.set).get("kids") or []

    def describe_failures(self, count=3):
        shown = "; ".join(f"at {t:.2f} s {what}: {why}" for t, what, why in self.failures[:count])
        return f"{len(self.failures)} of {self.verified} failed: {shown}"


class Rotation:
    """Two instances on one PostgreSQL database; a rotation while both mint tokens."""

    def __init__(self, report, jose, a, b):
        self.r = report
        self.jose = jose
        self.a = a
        self.b = b
        self.minted = {a.label: [], b.label: []}  # instance -> [(seconds, kid)]
        # Per instance: verifiers that fetched its JWKS at the last moment it did not
        # publish the next key yet, and that moment.
        self.late = {}
        self.stale_at = {}
        self.t0 = time.monotonic()

    def now(self):
        return time.monotonic() - self.t0

    def jwks_kids(self, server):
        resp = http("GET", server.url(JWKS_PATH))
        if resp.status != 200 or not isinstance(resp.json, dict):
            raise RuntimeError(f"GET {JWKS_PATH} at {server.label}: {resp.describe()}")
        return [k.get("kid") for k in resp.json.get("keys", [])]

    def round(self, index):
        """One login, alternately on A and B; every verifier checks the new token, the
        main ones the early token too."""
        server = (self.a, self.b)[index % 2]
        access = login(server, self.loop_user)
        at = self.now()
        self.minted[server.label].append((at, token_parts(access)[0].get("kid")))
        self.main.verify(at, f"a token of {server.label}", access, self.loop_user_id)
        self.main.verify(at, "the early token", self.early, self.early_user_id)
        for late in self.late.values():
            late.verify(at, f"a token of {server.label}", access, self.loop_user_id)

    def watch_publication(self, server, new_kid, index):
        """True once `server` publishes new_kid. Until then, fresh verifiers fetch its JWKS
        each round; the last ones that lack new_kid are kept (a service whose cache
        refreshed at that moment)."""
        name = f"late-{server.label[-1]}-{index}"
        candidate = CachingVerifiers(self.jose, name, server.url(JWKS_PATH), server.url(JWKS_PATH))
        candidate.verify(self.now(), "the early token", self.early, self.early_user_id)
        py_kids, jose_kids = candidate.cached_kids()
        if new_kid in py_kids and new_kid in jose_kids:
            return True
        self.late[server.label] = candidate
        self.stale_at[server.label] = self.now()
        return False

    def last_kid(self, server):
        seen = self.minted[server.label]
        return seen[-1][1] if seen else None

    def first_with(self, server, kid):
        return min((t for t, k in self.minted[server.label] if k == kid), default=None)

    def run(self):
        a, b = self.a, self.b
        kids_a, kids_b = self.jwks_kids(a), self.jwks_kids(b)
        self.r.check("rotation: both instances publish the same one key before the rotation",
                     len(kids_a) == 1 and kids_a == kids_b, f"A {kids_a}, B {kids_b}")
        old_kid = kids_a[0] if kids_a else None

        run_id = secrets.token_hex(3)
        self.early_user_id, self.early = register_and_login(a, f"rot_early_{run_id}")
        self.loop_user = f"rot_loop_{run_id}"
        self.loop_user_id, _ = register_and_login(b, self.loop_user)
        early_header = token_parts(self.early)[0]
        self.r.check("rotation: the early token (minted by A before the rotation) carries the old kid",
                     early_header.get("kid") == old_kid, json.dumps(early_header))

        # The main verifiers: PyJWKClient on A's JWKS, jose on B's.
        self.main = CachingVerifiers(self.jose, "rotation", a.url(JWKS_PATH), b.url(JWKS_PATH))

        new_kid = None
        generate = rotate = None
        generate_out = rotate_out = ""
        generated_at = rotated_at = followed_at = end_at = None
        published = {a.label: None, b.label: None}
        index = 0
        while self.now() < 60.0:
            started = time.monotonic()
            self.round(index)
            index += 1

            if generate is None:
                if self.now() >= 2.0:
                    generate = a.cli_start("keys", "generate")
            elif new_kid is None:
                if generate.poll() is None:
                    pass
                else:
                    generated_at = self.now()
                    generate_out = one_line(generate.stdout.read())
                    match = re.search(r"key (\S+) \(EdDSA\) generated as next", generate_out)
                    if generate.returncode != 0 or not match:
                        break
                    new_kid = match.group(1)
            elif rotate is None:
                # Once both instances publish the next key, rotate; --wait waits for the
                # rest of JWKS_MAX_AGE.
                for server in (a, b):
                    if published[server.label] is None and self.watch_publication(server, new_kid, index):
                        published[server.label] = self.now()
                if all(published.values()):
                    rotate = a.cli_start("keys", "rotate", "--wait")
            elif rotated_at is None:
                if rotate.poll() is not None:
                    rotate_out = one_line(rotate.stdout.read())
                    if rotate.returncode != 0:
                        break
                    rotated_at = self.now()
            elif followed_at is None:
                if self.last_kid(a) == new_kid and self.last_kid(b) == new_kid:
                    followed_at = self.now()
                    # One more max-age, so that every cache is refetched after the rotation.
                    end_at = followed_at + ROTATION_MAX_AGE + 1
                elif self.now() - rotated_at > FOLLOW_TIMEOUT_S:
                    break
            elif self.now() >= end_at:
                break
            time.sleep(max(0.0, ROUND_PAUSE_S - (time.monotonic() - started)))

        def at(t):
            return "-" if t is None else f"{t:.2f}"
        print(f"# timeline (s): next key generated {at(generated_at)}; last missing from A's "
              f"JWKS {at(self.stale_at.get(a.label))}, B's {at(self.stale_at.get(b.label))}; "
              f"published by A {at(published[a.label])}, B {at(published[b.label])}; rotated "
              f"{at(rotated_at)}; first token with it from A "
              f"{at(self.first_with(a, new_kid))}, B {at(self.first_with(b, new_kid))}", flush=True)

        self.r.check(f"rotation: `stores-api keys generate` -> a next key ({generate_out})",
                     new_kid is not None and new_kid != old_kid, generate_out or "not run")
        if new_kid is None:
            return
        self.r.check("rotation: both instances publish the next key in their JWKS",
                     all(published.values()), json.dumps(published))
        self.r.check(f"rotation: `stores-api keys rotate --wait` -> exit 0 ({rotate_out})",
                     rotated_at is not None, rotate_out or "not run")
        if rotated_at is None:
            return
        self.r.check(
            f"rotation: within {FOLLOW_TIMEOUT_S:.0f} s both instances mint tokens whose kid is the new key's",
            followed_at is not None,
            f"A's last kid {self.last_kid(a)}, B's last kid {self.last_kid(b)}, new {new_kid}")
        self.r.check(
            f"rotation: zero verification failures across the rotation: PyJWKClient on A's "
            f"JWKS and jose on B's, both caching, verified each new token and the early one "
            f"{self.main.verified} times in {index} rounds over {self.now():.1f} s",
            not self.main.failures, self.main.describe_failures())
        jose_fetches = self.jose.fetches("rotation")
        most = int(self.now() / ROTATION_MAX_AGE) + 2
        self.r.check(
            f"rotation: the caches were real: PyJWKClient fetched the JWKS {self.main.py.fetches} "
            f"times, jose {jose_fetches} times (at most {most} with max-age {ROTATION_MAX_AGE} s)",
            1 <= self.main.py.fetches <= most and 1 <= (jose_fetches or 0) <= most,
            f"PyJWKClient {self.main.py.fetches}, jose {jose_fetches}")
        # What a rotation must also hold for: a verifier whose cache was refreshed from an
        # instance a moment before that instance published the next key.
        for server in (a, b):
            late = self.late.get(server.label)
            if late is None:
                print(f"# {server.label} published the next key before it was first asked", flush=True)
                continue
            signed = [(self.first_with(s, new_kid), s.label) for s in (a, b)
                      if self.first_with(s, new_kid) is not None]
            why = late.describe_failures()
            if signed and late.failures:
                first, by = min(signed)
                why += (f"; {by} signed with the next key at {first:.2f} s, "
                        f"{first - published[server.label]:.1f} s after {server.label} first "
                        f"served a JWKS holding it (JWKS_MAX_AGE {ROTATION_MAX_AGE} s)")
            self.r.check(
                f"rotation: verifiers (PyJWKClient and jose) that fetched {server.label}'s JWKS "
                f"at {self.stale_at[server.label]:.2f} s, the last moment it lacked the next key, "
                f"verify every later token ({late.verified} verifications; the next key may "
                f"sign only once every instance has published it for JWKS_MAX_AGE)",
                not late.failures, why)

        kids_a, kids_b = self.jwks_kids(a), self.jwks_kids(b)
        self.r.check("rotation: afterwards both JWKS hold the new key and the retired old one",
                     set(kids_a) == set(kids_b) == {old_kid, new_kid}, f"A {kids_a}, B {kids_b}")
        claims, why = py_verify(CountingJWKClient(a.url(JWKS_PATH)), self.early, "EdDSA")
        self.r.check("rotation: the early token (retired key) still verifies with a new PyJWKClient",
                     claims is not None and claims.get("sub") == str(self.early_user_id), why or "")
        self.jose.open("after-rotation", b.url(JWKS_PATH))
        claims, why = self.jose.verify("after-rotation", self.early, "EdDSA")
        self.r.check("rotation: the early token (retired key) still verifies with a new jose resolver",
                     claims is not None and claims.get("sub") == str(self.early_user_id), why or "")
        resp = http("GET", b.url("/me"), token=self.early)
        self.r.check("rotation: the early token on instance B: GET /me -> 200",
                     resp.status == 200, resp.describe())

        status, out = a.cli("keys", "list")
        states = {}
        for line in out.split(" / "):
            fields = line.split()
            if len(fields) >= 3:
                states[fields[0]] = fields[2]
        self.r.check("rotation: `stores-api keys list` shows the new key current and the old one "
                     "retired, nothing else",
                     status == 0 and states == {new_kid: "current", old_kid: "retired"}, out)
        status, out = a.cli("keys", "retire", old_kid)
        self.r.check("rotation: `stores-api keys retire <old kid>` is refused (its tokens have not expired)",
                     status != 0 and "still verifies live tokens" in out, f"exit {status}: {out}")
        self.r.check("rotation: the old key is still in the JWKS after that refusal",
                     old_kid in self.jwks_kids(b), "")


def check_rotation(report, binary, jose, database_url):
    if not database_url:
        report.check("rotation: VERIFIERS_DATABASE_URL names a PostgreSQL database", False,
                     "run checks/verifiers/run.sh, which makes one")
        return
    common = {
        "JWT_ALGORITHM": "EdDSA",
        "JWT_KEY_ENCRYPTION_KEY": secrets.token_hex(32),
        "JWKS_MAX_AGE": str(ROTATION_MAX_AGE),
        "AUTH_RATE_LIMIT_PER_MINUTE": "0",
    }
    a = Server(binary, "instance A", common, database_url)
    b = Server(binary, "instance B", common, database_url)
    run_with_servers(report, [a, b], lambda a, b: Rotation(report, jose, a, b).run(),
                     stagger=INSTANCE_STAGGER_S)


def main(argv):
    binary = Path(argv[1]) if len(argv) > 1 else REPO_ROOT / "target" / "debug" / "stores-api"
    binary = str(binary.resolve())
    report = Report()
    if not os.access(binary, os.X_OK):
        report.check(f"server binary exists at {binary}", False, "build it with cargo build --bin stores-api")
        print(f"{report.passed} passed, {report.failed} failed")
        return 1

    parts = set((os.environ.get("VERIFIERS_PARTS") or "algorithms,flask,rotation").split(","))
    jose = Jose()
    try:
        if "algorithms" in parts:
            for alg in ("EdDSA", "ES256", "RS256"):
                report.section(f"{alg}: keys in the database, PyJWT and jose through the JWKS",
                               lambda alg=alg: check_algorithm(report, binary, jose, alg))
        if "flask" in parts:
            report.section("Flask-JWT-Extended with RS256, both ways",
                           lambda: check_flask_rs256(report, binary))
        if "rotation" in parts:
            report.section("rotation: two instances on one PostgreSQL database, caching verifiers",
                           lambda: check_rotation(report, binary, jose,
                                                  os.environ.get("VERIFIERS_DATABASE_URL")))
    finally:
        jose.close()

    print(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
