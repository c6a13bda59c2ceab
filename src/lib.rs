//! stores-api: a JWT-secured REST API for stores, items and tags whose tokens are
//! interchangeable with Flask-JWT-Extended's.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod input;
pub mod logging;
pub mod metrics;
pub mod models;
pub mod routes;
pub mod schema;
pub mod startup;
pub mod state;
