"""A Flask + Flask-JWT-Extended reference implementation of a subset of the stores-api.

It exists only as a comparison target for `load/run.sh --url`: the same endpoints the
load kit drives (health, register, login, refresh with rotation, store, item), written
the way the Flask-JWT-Extended tutorials do it. It is not part of the service.

Run it with load/flask-run.sh (a venv, then gunicorn with one worker per core):
    JWT_SECRET_KEY=... PORT=5000 bash load/flask-run.sh
    bash load/run.sh --url http://127.0.0.1:5000 --pid <gunicorn master pid>

Environment: JWT_SECRET_KEY (required), FLASK_DB (the sqlite file, default
stores-api-flask.db in the temp dir: one path, so that every gunicorn worker shares it),
BCRYPT_COST (default 12).
"""
import os
import sqlite3
import tempfile
from datetime import timedelta

import bcrypt
from flask import Flask, g, jsonify, request
from flask_jwt_extended import (JWTManager, create_access_token, create_refresh_token,
                                get_jwt, get_jwt_identity, jwt_required)

DB_PATH = os.environ.get("FLASK_DB") or os.path.join(tempfile.gettempdir(), "stores-api-flask.db")
BCRYPT_COST = int(os.environ.get("BCRYPT_COST", "12"))
if not os.environ.get("JWT_SECRET_KEY"):
    raise SystemExit("flask_app: JWT_SECRET_KEY must be set")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE,
                                  password_hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS stores (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                  price REAL NOT NULL,
                                  store_id INTEGER NOT NULL REFERENCES stores(id));
CREATE TABLE IF NOT EXISTS revoked_tokens (jti TEXT PRIMARY KEY);
"""

app = Flask(__name__)
app.config["JWT_SECRET_KEY"] = os.environ["JWT_SECRET_KEY"]
app.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(minutes=15)
app.config["JWT_REFRESH_TOKEN_EXPIRES"] = timedelta(days=30)
jwt = JWTManager(app)


def connect():
    conn = sqlite3.connect(DB_PATH, timeout=5.0)  # timeout = busy timeout (seconds)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def db():
    """One connection per request, closed at teardown."""
    if "db" not in g:
        g.db = connect()
    return g.db


@app.teardown_appcontext
def close_db(_exc):
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


with connect() as _conn:  # create the tables at start-up (every worker; IF NOT EXISTS)
    _conn.executescript(SCHEMA)
_conn.close()


@jwt.token_in_blocklist_loader
def token_revoked(_header, payload):
    row = db().execute("SELECT 1 FROM revoked_tokens WHERE jti = ?", (payload["jti"],)).fetchone()
    return row is not None


def error(status, message):
    return jsonify(message=message), status


def body():
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def tokens_for(user_id, fresh):
    """Fresh access tokens from /login only, not from /refresh (as in the Rust service)."""
    identity = str(user_id)
    return {
        "access_token": create_access_token(identity=identity, fresh=fresh,
                                            additional_claims={"is_admin": False}),
        "refresh_token": create_refresh_token(identity=identity),
    }


def item_view(item_id):
    row = db().execute(
        "SELECT i.id, i.name, i.price, s.id AS store_id, s.name AS store_name "
        "FROM items i JOIN stores s ON s.id = i.store_id WHERE i.id = ?", (item_id,)).fetchone()
    if row is None:
        return None
    return {"id": row["id"], "name": row["name"], "price": row["price"],
            "store": {"id": row["store_id"], "name": row["store_name"]}, "tags": []}


@app.get("/health")
def health():
    return jsonify(status="ok")


@app.post("/register")
def register():
    data = body()
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        return error(400, "username and password are required strings")
    password_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_COST))
    try:
        with db() as conn:
            cur = conn.execute("INSERT INTO users (username, password_hash) VALUES (?, ?)",
                               (username, password_hash))
    except sqlite3.IntegrityError:
        return error(409, "A user with that username already exists.")
    return jsonify(id=cur.lastrowid, username=username), 201


@app.post("/login")
def login():
    data = body()
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return error(401, "Invalid credentials.")
    row = db().execute("SELECT id, password_hash FROM users WHERE username = ?", (username,)).fetchone()
    if row is None or not bcrypt.checkpw(password.encode(), row["password_hash"]):
        return error(401, "Invalid credentials.")
    return jsonify(tokens_for(row["id"], fresh=True))


@app.post("/refresh")
@jwt_required(refresh=True)
def refresh():
    # Rotation: spend the presented refresh token. The primary key makes it single use
    # even when two requests race past the blocklist check with the same token.
    try:
        with db() as conn:
            conn.execute("INSERT INTO revoked_tokens (jti) VALUES (?)", (get_jwt()["jti"],))
    except sqlite3.IntegrityError:
        return error(401, "Token has been revoked")
    return jsonify(tokens_for(get_jwt_identity(), fresh=False))


@app.post("/store")
@jwt_required(fresh=True)
def create_store():
    name = body().get("name")
    if not isinstance(name, str) or not name:
        return error(400, "name is required")
    try:
        with db() as conn:
            cur = conn.execute("INSERT INTO stores (name) VALUES (?)", (name,))
    except sqlite3.IntegrityError:
        return error(409, "A store with that name already exists.")
    return jsonify(id=cur.lastrowid, name=name, items=[]), 201


@app.post("/item")
@jwt_required(fresh=True)
def create_item():
    data = body()
    name, price, store_id = data.get("name"), data.get("price"), data.get("store_id")
    if (not isinstance(name, str) or not name or isinstance(price, bool)
            or not isinstance(price, (int, float)) or price < 0 or not isinstance(store_id, int)):
        return error(400, "name (string), price (number >= 0) and store_id (integer) are required")
    if db().execute("SELECT 1 FROM stores WHERE id = ?", (store_id,)).fetchone() is None:
        return error(404, "Store not found.")
    with db() as conn:
        cur = conn.execute("INSERT INTO items (name, price, store_id) VALUES (?, ?, ?)",
                           (name, float(price), store_id))
    return jsonify(item_view(cur.lastrowid)), 201


@app.get("/item/<int:item_id>")
@jwt_required()
def get_item(item_id):
    view = item_view(item_id)
    return jsonify(view) if view else error(404, "Item not found.")


@app.put("/item/<int:item_id>")
@jwt_required()
def update_item(item_id):
    data = body()
    price, name = data.get("price"), data.get("name")
    if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
        return error(400, "price (number >= 0) is required")
    if name is not None and (not isinstance(name, str) or not name):
        return error(400, "name must be a non-empty string")
    with db() as conn:
        cur = conn.execute("UPDATE items SET price = ?, name = COALESCE(?, name) WHERE id = ?",
                           (float(price), name, item_id))
    if cur.rowcount == 0:
        return error(404, "Item not found.")
    return jsonify(item_view(item_id))
