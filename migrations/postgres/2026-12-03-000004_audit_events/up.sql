-- The audit log: who did what to which account, from where, and how it went. Written in
-- the transaction of the change it records. No foreign keys: an event outlives the
-- user it names. `details` is a small JSON object; never a password, token or hash.
-- A sequence: ids are never reused, so a page cursor (an id) stays valid while rows
-- are added and old ones pruned.
CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMP NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'limited')),
    actor_id BIGINT,
    target_id BIGINT,
    session_id TEXT,
    ip TEXT,
    user_agent TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
-- One index per filter of GET /audit, each ending in the id the pages are ordered by.
CREATE INDEX audit_events_actor ON audit_events (actor_id, id);
CREATE INDEX audit_events_target ON audit_events (target_id, id);
CREATE INDEX audit_events_action ON audit_events (action, id);
CREATE INDEX audit_events_outcome ON audit_events (outcome, id);
CREATE INDEX audit_events_ip ON audit_events (ip, id);
CREATE INDEX audit_events_at ON audit_events (at);
