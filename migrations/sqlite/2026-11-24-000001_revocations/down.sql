DROP INDEX sessions_refreshed_at_idx;
DROP INDEX sessions_created_at_idx;
DROP TABLE revocations;
