-- Several nodes on one index: a claimed crash is leased to one node (`claimed_by`) until
-- `lease_until` (Unix seconds), which the node renews while it works; only an expired lease is
-- taken over. `cluster_events` tells the other nodes what changed (a symbol file uploaded, a
-- token revoked) so they drop what they cached; see docs/SCALING.md.

ALTER TABLE ingest_queue ADD COLUMN claimed_by TEXT;
ALTER TABLE ingest_queue ADD COLUMN lease_until BIGINT;
-- When the crash was acknowledged, in milliseconds (for the end-to-end latency metric).
ALTER TABLE ingest_queue ADD COLUMN enqueued_ms BIGINT;
-- (Expired leases are found through the claim index: few rows are `processing` at a time.)
-- Claims take the oldest queued rows in exactly this order, straight from the index.
DROP INDEX ingest_queue_state;
CREATE INDEX ingest_queue_claim ON ingest_queue (state, enqueued_at, enqueued_ms, crash_id);

CREATE TABLE cluster_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT   NOT NULL,
    subject TEXT   NOT NULL,
    node    TEXT   NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX cluster_events_at ON cluster_events (at);
