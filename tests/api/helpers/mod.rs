//! The harness of this test binary, by concern: the server and its HTTP client (app),
//! what tests check of answers (assertions), ready-made users, tokens and resources
//! (fixtures), and the guard matrix (guards).

mod app;
mod assertions;
mod fixtures;
mod guards;

pub use app::*;
pub use assertions::*;
pub use fixtures::*;
pub use guards::*;
