-- A crash queued again for reprocessing keeps its place in the index until the new processing
-- is recorded; this marks its queue row so that recording replaces the old record (in the same
-- transaction) instead of keeping it as a repeated delivery would.
ALTER TABLE ingest_queue ADD COLUMN reprocess BIGINT NOT NULL DEFAULT 0;

-- What the correlations compare besides a crash's annotations, derived from the dump (OS
-- version, CPU vendor and family, the versions of the modules on the crashing thread, the kind
-- of memory the fault hit): a JSON object, one column (no rows per fact on the crash path).
ALTER TABLE crashes ADD COLUMN facts TEXT;
