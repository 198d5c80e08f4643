-- Retention. When each module's debug files last symbolicated a crash (debug ID in the store's
-- spelling; written at most once an hour per module), so files no crash has used for N days
-- can go; and when a crash's payload (dumps, attachments, processed result) was deleted for
-- age, while its row, counts and group stay.
CREATE TABLE symbol_usage (
    debug_id     TEXT   PRIMARY KEY,
    last_used_at BIGINT NOT NULL
);
ALTER TABLE crashes ADD COLUMN payload_expired_at BIGINT;
