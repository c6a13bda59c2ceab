//! Identity: tokens, the bearer middleware, guards, sessions and passwords.

pub mod audit;
pub mod cookies;
pub mod flows;
pub mod guards;
pub mod keys;
pub mod middleware;
pub mod password;
pub mod rate_limit;
pub mod revocation;
pub mod sessions;
pub mod tokens;
