//! Diesel structs and their queries.

pub mod user;
