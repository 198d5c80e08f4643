-- A crash queued again for reprocessing keeps its place in the index until the new processing
-- is recorded; this marks its queue row so that recording replaces the old record (in the same
-- transaction) instead of keeping it as a repeated delivery would.
ALTER TABLE ingest_queue ADD COLUMN reprocess BIGINT NOT NULL DEFAULT 0;
