DROP INDEX auth_limits_resets_at_ms_idx;
DROP TABLE auth_limits;
