//! Black-box tests over HTTP against the real server (SQLite; PostgreSQL too when
//! TEST_DATABASE_URL is set). One binary, one module per feature.

mod auth;
mod browser;
mod docs;
mod errors;
mod faults;
mod guards;
mod hashing;
mod helpers;
mod items;
mod limits;
mod queries;
mod sessions;
mod stores;
mod tags;
mod users;
