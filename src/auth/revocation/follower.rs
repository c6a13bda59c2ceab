//! The follower: keeps a [`Revocations`] in step with the revocation log and the
//! sessions other instances open, polling over a connection of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web;

use super::log::{fetch, Cursor};
use super::set::Revocations;
use crate::config::DatabaseUrl;
use crate::db::{ConnectionManager, DbConnection};
use crate::error::ApiError;
use crate::metrics::metrics;

/// Keeps a [`Revocations`] in step with the database, over a connection of its own so
/// that a busy pool cannot starve it into the fail-closed state.
pub struct Follower {
    set: Arc<Revocations>,
    manager: ConnectionManager,
    conn: Option<DbConnection>,
    cursor: Option<Cursor>,
    failing: bool,
}

impl Follower {
    /// A follower for `set` on the database at `url`; nothing is read yet.
    pub fn new(set: Arc<Revocations>, url: DatabaseUrl) -> Self {
        Follower {
            set,
            manager: ConnectionManager::new(url),
            conn: None,
            cursor: None,
            failing: false,
        }
    }

    /// One poll: reads what changed and enters it. On failure the connection is dropped
    /// (the next poll opens a new one) and the set ages towards the fail-closed bound.
    pub async fn sync(&mut self) -> Result<(), ApiError> {
        let started = Instant::now();
        let cursor = self.cursor.clone();
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
            match fetch(&mut conn, cursor.as_ref()) {
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
        if let Some(m) = metrics() {
            m.revocation_poll.observe(started.elapsed().as_secs_f64());
        }
        self.cursor = Some(batch.cursor);
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
