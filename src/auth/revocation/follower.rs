//! The follower: keeps a [`Revocations`] in step with the revocation log and the
//! sessions other instances open, polling over a connection of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;
use chrono::NaiveDateTime;

use super::log::fetch;
use super::set::Revocations;
use crate::config::DatabaseUrl;
use crate::db::{self, ConnectionManager, DbConnection};
use crate::error::ApiError;

/// How far back each poll re-reads the log and the sessions. A row's timestamp is taken
/// before its transaction commits, so a poll can see a later row before an earlier one
/// commits (and rows from instances whose clocks differ a little); re-reading the window
/// every time, idempotently, still catches it.
const REREAD_WINDOW: Duration = Duration::from_secs(10);
/// Keeps a [`Revocations`] in step with the database, over a connection of its own so
/// that a busy pool cannot starve it into the fail-closed state.
pub struct Follower {
    set: Arc<Revocations>,
    manager: ConnectionManager,
    conn: Option<DbConnection>,
    since: Option<NaiveDateTime>,
    failing: bool,
}

impl Follower {
    /// A follower for `set` on the database at `url`; nothing is read yet.
    pub fn new(set: Arc<Revocations>, url: DatabaseUrl) -> Self {
        Follower {
            set,
            manager: ConnectionManager::new(url),
            conn: None,
            since: None,
            failing: false,
        }
    }

    /// One poll: reads what changed and enters it. On failure the connection is dropped
    /// (the next poll opens a new one) and the set ages towards the fail-closed bound.
    pub async fn sync(&mut self) -> Result<(), ApiError> {
        let started = Instant::now();
        let read_at = db::now();
        let since = self.since;
        let (conn, manager) = (self.conn.take(), self.manager.clone());
        let (conn, fetched) = web::block(move || {
            let mut conn = match conn {
                Some(conn) => conn,
                None => match r2d2::ManageConnection::connect(&manager) {
                    Ok(conn) => conn,
                    Err(e) => {
                        log::debug!("revocation follower cannot connect: {e}");
                        return (None, Err(ApiError::ServiceUnavailable));
                    }
                },
            };
            match fetch(&mut conn, since) {
                Ok(batch) => (Some(conn), Ok(batch)),
                Err(e) => (None, Err(e)),
            }
        })
        .await?;
        self.conn = conn;
        let batch = fetched?;
        self.set.note(&batch.revocations);
        self.set.learn_sessions(&batch.sessions);
        self.set.mark_synced(started);
        self.since = Some(read_at - REREAD_WINDOW);
        Ok(())
    }

    /// Polls every `interval` until dropped, logging only changes of health.
    pub async fn run(mut self, interval: Duration) {
        let mut ticker = actix_web::rt::time::interval(interval);
        loop {
            ticker.tick().await;
            match self.sync().await {
                Ok(()) if self.failing => {
                    self.failing = false;
                    log::info!("revocation follower: database reachable again");
                }
                Ok(()) => {}
                Err(e) if !self.failing => {
                    self.failing = true;
                    log::warn!(
                        "revocation follower: poll failed ({e}); token checks answer 503 after {} ms without a successful poll",
                        self.set.stale_after().as_millis()
                    );
                }
                Err(_) => {}
            }
        }
    }
}
