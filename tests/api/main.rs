//! Black-box tests over HTTP against the real server (SQLite; PostgreSQL too when
//! TEST_DATABASE_URL is set). One binary, one module per feature.

mod audit;
mod auth;
mod browser;
mod cluster;
mod cookies;
mod docs;
mod errors;
mod faults;
mod guards;
mod hardening;
mod hashing;
mod helpers;
mod hostile;
mod introspection;
mod items;
#[path = "../strategies/json.rs"]
mod json_strategies;
mod keys;
mod limits;
mod metrics;
mod props;
mod queries;
mod races;
mod security;
mod sessions;
mod stores;
mod tags;
mod usernames;
mod users;
