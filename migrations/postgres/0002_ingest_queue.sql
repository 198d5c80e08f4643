-- The durable ingest queue (the Postgres twin of migrations/sqlite/0002): a crash is acknowledged only after its raw files are stored and its
-- row here is committed; workers claim rows, and a restart requeues rows left in `processing`.

CREATE TABLE ingest_queue (
    crash_id    TEXT   PRIMARY KEY,
    raw_key     TEXT   NOT NULL,
    state       TEXT   NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    error       TEXT,
    enqueued_at BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX ingest_queue_state ON ingest_queue (state, enqueued_at);

-- Which crashes lacked symbols for which modules, so an upload can reprocess them.
CREATE TABLE crash_missing_symbols (
    crash_id TEXT NOT NULL,
    debug_id TEXT NOT NULL,
    PRIMARY KEY (crash_id, debug_id)
);
CREATE INDEX crash_missing_symbols_debug ON crash_missing_symbols (debug_id);
