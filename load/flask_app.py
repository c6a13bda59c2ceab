"""A Flask + Flask-JWT-Extended reference implementation of a subset of the stores-api.

It exists only as a comparison target for `load/run.sh --url` and `load/compare.sh`: the
same endpoints the load kit drives (health, register, login, refresh with rotation, me,
store, item, tag), with the JSON shapes of docs/API.md, written the way the
Flask-JWT-Extended tutorials do it. It is not part of the service.

Run it with load/flask-run.sh (a venv, then gunicorn with one worker per core):
    JWT_SECRET_KEY=... PORT=5000 bash load/flask-run.sh
    bash load/run.sh --url http://127.0.0.1:5000 --pid <gunicorn master pid>

Environment: JWT_SECRET_KEY (required); FLASK_DB, the database: a postgres:// (or
postgresql://) URL for PostgreSQL through psycopg 3, one connection per gunicorn worker
kept for the worker's life (what a Flask-SQLAlchemy pool gives a sync worker), else a
SQLite file, one connection per request (default stores-api-flask.db in the temp dir:
one path, so that every gunicorn worker shares it); BCRYPT_COST (default 12). The tables
are created at start-up when missing.
"""
import os
import sqlite3
import tempfile
from datetime import datetime, timedelta, timezone

import bcrypt
from flask import Flask, g, jsonify, request
from flask_jwt_extended import (JWTManager, create_access_token, create_refresh_token,
                                get_jwt, get_jwt_identity, jwt_required)

DB = os.environ.get("FLASK_DB") or os.path.join(tempfile.gettempdir(), "stores-api-flask.db")
POSTGRES = DB.startswith(("postgres://", "postgresql://"))
BCRYPT_COST = int(os.environ.get("BCRYPT_COST", "12"))
if not os.environ.get("JWT_SECRET_KEY"):
    raise SystemExit("flask_app: JWT_SECRET_KEY must be set")

if POSTGRES:
    import psycopg
    from psycopg.rows import dict_row
    IntegrityError = psycopg.IntegrityError
else:
    IntegrityError = sqlite3.IntegrityError

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE,
                                  password_hash BLOB NOT NULL,
                                  is_admin BOOLEAN NOT NULL DEFAULT 0,
                                  created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stores (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                  price REAL NOT NULL,
                                  store_id INTEGER NOT NULL REFERENCES stores(id));
CREATE TABLE IF NOT EXISTS tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                 store_id INTEGER NOT NULL REFERENCES stores(id),
                                 UNIQUE (store_id, name));
CREATE TABLE IF NOT EXISTS items_tags (item_id INTEGER NOT NULL REFERENCES items(id),
                                       tag_id INTEGER NOT NULL REFERENCES tags(id),
                                       PRIMARY KEY (item_id, tag_id));
CREATE TABLE IF NOT EXISTS revoked_tokens (jti TEXT PRIMARY KEY);
"""

POSTGRES_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (id BIGSERIAL PRIMARY KEY, username TEXT NOT NULL UNIQUE,
                                  password_hash BYTEA NOT NULL,
                                  is_admin BOOLEAN NOT NULL DEFAULT FALSE,
                                  created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stores (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS items (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL,
                                  price DOUBLE PRECISION NOT NULL,
                                  store_id BIGINT NOT NULL REFERENCES stores(id));
CREATE TABLE IF NOT EXISTS tags (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL,
                                 store_id BIGINT NOT NULL REFERENCES stores(id),
                                 UNIQUE (store_id, name));
CREATE TABLE IF NOT EXISTS items_tags (item_id BIGINT NOT NULL REFERENCES items(id),
                                       tag_id BIGINT NOT NULL REFERENCES tags(id),
                                       PRIMARY KEY (item_id, tag_id));
CREATE TABLE IF NOT EXISTS revoked_tokens (jti TEXT PRIMARY KEY);
"""

app = Flask(__name__)
app.config["JWT_SECRET_KEY"] = os.environ["JWT_SECRET_KEY"]
app.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(minutes=15)
app.config["JWT_REFRESH_TOKEN_EXPIRES"] = timedelta(days=30)
jwt = JWTManager(app)


def connect():
    if POSTGRES:
        return psycopg.connect(DB, row_factory=dict_row)
    conn = sqlite3.connect(DB, timeout=5.0)  # timeout = busy timeout (seconds)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


_worker_conn = None  # PostgreSQL: this worker's connection


def db():
    """SQLite: one connection per request, closed at teardown. PostgreSQL: the worker's
    connection, opened on first use (after gunicorn forked the worker) and kept."""
    global _worker_conn
    if POSTGRES:
        if _worker_conn is None or _worker_conn.closed:
            _worker_conn = connect()
        return _worker_conn
    if "db" not in g:
        g.db = connect()
    return g.db


def query(sql, args=()):
    """Runs one statement written with SQLite's ? placeholders (psycopg's are %s)."""
    if POSTGRES:
        sql = sql.replace("?", "%s")
    return db().execute(sql, args)


@app.teardown_appcontext
def end_request(_exc):
    if POSTGRES:
        # What a pool does when a connection comes back: end the request's transaction
        # (its reads; writes were committed by their handler).
        if _worker_conn is not None and not _worker_conn.closed:
            _worker_conn.rollback()
        return
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def create_tables():
    """At start-up, in every worker; IF NOT EXISTS makes it idempotent."""
    conn = connect()
    try:
        if POSTGRES:
            with conn.transaction():
                # Concurrent CREATE TABLE IF NOT EXISTS can still collide in PostgreSQL's
                # catalog: the workers take turns.
                conn.execute("SELECT pg_advisory_xact_lock(74201)")
                conn.execute(POSTGRES_SCHEMA)
        else:
            conn.executescript(SQLITE_SCHEMA)
    finally:
        conn.close()


create_tables()


@jwt.token_in_blocklist_loader
def token_revoked(_header, payload):
    row = query("SELECT 1 FROM revoked_tokens WHERE jti = ?", (payload["jti"],)).fetchone()
    return row is not None


def error(status, message):
    return jsonify(message=message), status


def body():
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def insert(sql, args):
    """Runs an INSERT ... RETURNING id and commits; returns the id."""
    new_id = query(sql + " RETURNING id", args).fetchone()["id"]
    db().commit()
    return new_id


def tokens_for(user_id, fresh):
    """Fresh access tokens from /login only, not from /refresh (as in the Rust service)."""
    identity = str(user_id)
    return {
        "access_token": create_access_token(identity=identity, fresh=fresh,
                                            additional_claims={"is_admin": False}),
        "refresh_token": create_refresh_token(identity=identity),
    }


def item_summaries(sql, args):
    return [{"id": r["id"], "name": r["name"], "price": r["price"]}
            for r in query(sql, args).fetchall()]


def tag_refs(sql, args):
    return [{"id": r["id"], "name": r["name"]} for r in query(sql, args).fetchall()]


def item_view(item_id):
    row = query(
        "SELECT i.id, i.name, i.price, s.id AS store_id, s.name AS store_name "
        "FROM items i JOIN stores s ON s.id = i.store_id WHERE i.id = ?", (item_id,)).fetchone()
    if row is None:
        return None
    tags = tag_refs("SELECT t.id, t.name FROM tags t JOIN items_tags it ON it.tag_id = t.id "
                    "WHERE it.item_id = ? ORDER BY t.id", (item_id,))
    return {"id": row["id"], "name": row["name"], "price": row["price"],
            "store": {"id": row["store_id"], "name": row["store_name"]}, "tags": tags}


def store_view(store_id):
    row = query("SELECT id, name FROM stores WHERE id = ?", (store_id,)).fetchone()
    if row is None:
        return None
    items = item_summaries("SELECT id, name, price FROM items WHERE store_id = ? ORDER BY id",
                           (store_id,))
    tags = tag_refs("SELECT id, name FROM tags WHERE store_id = ? ORDER BY id", (store_id,))
    return {"id": row["id"], "name": row["name"], "items": items, "tags": tags}


def tag_view(tag_id):
    row = query(
        "SELECT t.id, t.name, s.id AS store_id, s.name AS store_name "
        "FROM tags t JOIN stores s ON s.id = t.store_id WHERE t.id = ?", (tag_id,)).fetchone()
    if row is None:
        return None
    items = item_summaries("SELECT i.id, i.name, i.price FROM items i "
                           "JOIN items_tags it ON it.item_id = i.id "
                           "WHERE it.tag_id = ? ORDER BY i.id", (tag_id,))
    return {"id": row["id"], "name": row["name"],
            "store": {"id": row["store_id"], "name": row["store_name"]}, "items": items}


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
    created_at = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    try:
        insert("INSERT INTO users (username, password_hash, is_admin, created_at) "
               "VALUES (?, ?, ?, ?)", (username, password_hash, False, created_at))
    except IntegrityError:
        db().rollback()
        return error(409, "A user with that username already exists.")
    return jsonify(message="User created successfully."), 201


@app.post("/login")
def login():
    data = body()
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return error(401, "Invalid credentials.")
    row = query("SELECT id, password_hash FROM users WHERE username = ?", (username,)).fetchone()
    if row is None or not bcrypt.checkpw(password.encode(), row["password_hash"]):
        return error(401, "Invalid credentials.")
    return jsonify(tokens_for(row["id"], fresh=True))


@app.post("/refresh")
@jwt_required(refresh=True)
def refresh():
    # Rotation: spend the presented refresh token. The primary key makes it single use
    # even when two requests race past the blocklist check with the same token.
    try:
        query("INSERT INTO revoked_tokens (jti) VALUES (?)", (get_jwt()["jti"],))
        db().commit()
    except IntegrityError:
        db().rollback()
        return error(401, "Token has been revoked")
    return jsonify(tokens_for(get_jwt_identity(), fresh=False))


@app.get("/me")
@jwt_required()
def me():
    row = query("SELECT id, username, is_admin, created_at FROM users WHERE id = ?",
                (int(get_jwt_identity()),)).fetchone()
    if row is None:
        return error(404, "User not found.")
    return jsonify(id=row["id"], username=row["username"], is_admin=bool(row["is_admin"]),
                   created_at=row["created_at"])


@app.post("/store")
@jwt_required(fresh=True)
def create_store():
    name = body().get("name")
    if not isinstance(name, str) or not name:
        return error(400, "name is required")
    try:
        store_id = insert("INSERT INTO stores (name) VALUES (?)", (name,))
    except IntegrityError:
        db().rollback()
        return error(409, "A store with that name already exists.")
    return jsonify(store_view(store_id)), 201


@app.get("/store/<int:store_id>")
@jwt_required()
def get_store(store_id):
    view = store_view(store_id)
    return jsonify(view) if view else error(404, "Store not found.")


@app.post("/store/<int:store_id>/tag")
@jwt_required()
def create_tag(store_id):
    name = body().get("name")
    if not isinstance(name, str) or not name:
        return error(400, "name is required")
    if query("SELECT 1 FROM stores WHERE id = ?", (store_id,)).fetchone() is None:
        return error(404, "Store not found.")
    try:
        tag_id = insert("INSERT INTO tags (name, store_id) VALUES (?, ?)", (name, store_id))
    except IntegrityError:
        db().rollback()
        return error(409, "A tag with that name already exists in that store.")
    return jsonify(tag_view(tag_id)), 201


@app.get("/tag/<int:tag_id>")
@jwt_required()
def get_tag(tag_id):
    view = tag_view(tag_id)
    return jsonify(view) if view else error(404, "Tag not found.")


@app.post("/item")
@jwt_required(fresh=True)
def create_item():
    data = body()
    name, price, store_id = data.get("name"), data.get("price"), data.get("store_id")
    if (not isinstance(name, str) or not name or isinstance(price, bool)
            or not isinstance(price, (int, float)) or price < 0 or not isinstance(store_id, int)):
        return error(400, "name (string), price (number >= 0) and store_id (integer) are required")
    if query("SELECT 1 FROM stores WHERE id = ?", (store_id,)).fetchone() is None:
        return error(404, "Store not found.")
    item_id = insert("INSERT INTO items (name, price, store_id) VALUES (?, ?, ?)",
                     (name, float(price), store_id))
    return jsonify(item_view(item_id)), 201


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
    cur = query("UPDATE items SET price = ?, name = COALESCE(?, name) WHERE id = ?",
                (float(price), name, item_id))
    db().commit()
    if cur.rowcount == 0:
        return error(404, "Item not found.")
    return jsonify(item_view(item_id))


@app.post("/item/<int:item_id>/tag/<int:tag_id>")
@jwt_required()
def tag_item(item_id, tag_id):
    item = query("SELECT store_id FROM items WHERE id = ?", (item_id,)).fetchone()
    if item is None:
        return error(404, "Item not found.")
    tag = query("SELECT store_id FROM tags WHERE id = ?", (tag_id,)).fetchone()
    if tag is None:
        return error(404, "Tag not found.")
    if item["store_id"] != tag["store_id"]:
        return error(422, "The item and the tag belong to different stores.")
    # Tagging twice is harmless: one link.
    query("INSERT INTO items_tags (item_id, tag_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
          (item_id, tag_id))
    db().commit()
    return jsonify(tag_view(tag_id)), 201
