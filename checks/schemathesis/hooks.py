"""Schemathesis hooks for checks/schemathesis/run.sh (loaded through SCHEMATHESIS_HOOKS).

With ST_AUTH=admin every test case gets a fresh admin access token of its own, from
POST /login with the bootstrap admin (BASE_URL, ADMIN_USERNAME, ADMIN_PASSWORD). A token
per case, not one for the run, because the fuzzer calls operations that end sessions
(POST /logout, DELETE /sessions/{id}, POST /user/{id}/revoke, PATCH /user/{id}): with a
shared token every case after the first such call would only see 401s. Login tokens are
fresh, so the fresh and fresh-admin guards are passed too.

Two operations could end the bootstrap admin itself, after which no case could log in:
DELETE /user/{id} and PATCH /user/{id} (is_admin false) on the admin's own id. Those two
cases are pointed at a throwaway user registered for the purpose instead, so they still
run, and reach the operation's 200. PUT /me/password cannot change the admin's password:
the script gives it a random one the fuzzer cannot guess, so it meets the documented
422 of a wrong current password.

With ST_AUTH unset no token is sent: every guarded operation must answer its documented
401.
"""

import json
import os
import secrets
import urllib.error
import urllib.request

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

BASE_URL = os.environ["BASE_URL"]
ADMIN_USERNAME = os.environ["ADMIN_USERNAME"]
ADMIN_PASSWORD = os.environ["ADMIN_PASSWORD"]


@schemathesis.check
def positive_data_acceptance_whole_case(ctx, response, case):
    """schemathesis's positive_data_acceptance, on cases whose every part is positive.

    In 4.32.5 the coverage phase can label a case positive for its path parameter while
    its body is a negative filler (`meta.components.body.mode` = negative, e.g. a body
    of `0` for a `{name}` object); the built-in check then calls the server's correct
    422 a failure. Those cases are left to negative_data_rejection, which they are.
    """
    meta = case.meta
    components = getattr(meta, "components", None) or {}
    if any(info.mode.value == "negative" for info in components.values()):
        return None
    return positive_data_acceptance(ctx, response, case)


def _call(method, path, body=None, token=None):
    """One JSON request to the server under test; returns the decoded body."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(BASE_URL + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        # Say which set-up call failed; the fuzzer reports it as an error of the case.
        raise RuntimeError(f"{method} {path}: {err.code} {err.read()[:300]!r}") from err


def _login(username, password):
    """A fresh access token."""
    return _call("POST", "/login", {"username": username, "password": password})["access_token"]


_ADMIN_ID = []


def _admin_id():
    """The bootstrap admin's id (GET /me once)."""
    if not _ADMIN_ID:
        _ADMIN_ID.append(_call("GET", "/me", token=_login(ADMIN_USERNAME, ADMIN_PASSWORD))["id"])
    return _ADMIN_ID[0]


def _throwaway_user_id():
    """The id of a newly registered user nobody else knows of."""
    username = "st-" + secrets.token_hex(8)
    password = secrets.token_urlsafe(18)
    _call("POST", "/register", {"username": username, "password": password})
    return _call("GET", "/me", token=_login(username, password))["id"]


def _as_id(value):
    """The id a path segment names, as leniently as the server could read it ("+1", "01")."""
    try:
        return int(str(value))
    except ValueError:
        return None


if os.environ.get("ST_AUTH") == "admin":

    @schemathesis.auth(refresh_interval=None)
    class FreshAdminToken:
        """A fresh admin access token per case (no caching: refresh_interval=None)."""

        def get(self, case, ctx):
            return _login(ADMIN_USERNAME, ADMIN_PASSWORD)

        def set(self, case, data, ctx):
            case.headers = case.headers or {}
            case.headers["Authorization"] = f"Bearer {data}"

    @schemathesis.hook
    def before_call(context, case, kwargs):
        """Keeps the bootstrap admin alive: see the module's docstring."""
        if (
            case.operation.path == "/user/{id}"
            and case.method.upper() in ("DELETE", "PATCH")
            and isinstance(case.path_parameters, dict)
            and _as_id(case.path_parameters.get("id")) == _admin_id()
        ):
            case.path_parameters = {**case.path_parameters, "id": _throwaway_user_id()}
