//! Revocation that holds on every instance without a database round trip per request.
//!
//! The in-memory set ([`set`]) holds the sessions this instance knows (owner, expiry,
//! revoked or not), the revoked jtis of sid-less tokens, and deleted users. It is
//! filled at start-up, kept in step with the revocation log and new sessions ([`log`])
//! by a [`Follower`] polling every REVOCATION_POLL_INTERVAL over its own connection, and
//! written at once by this instance's own revocations. Entries leave memory (and the
//! log) once every token they cover has expired, so memory is bounded by live tokens,
//! not by history.

pub mod follower;
pub mod log;
pub mod set;

pub use follower::Follower;
pub use log::{Kind, Revocation, SessionRow};
pub use set::{Lookup, Revocations};
