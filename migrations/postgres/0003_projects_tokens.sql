-- Projects, their ingest keys, and API tokens (the Postgres twin of migrations/sqlite/0003).
-- Crashes, groups and queued crashes belong to a project; fingerprints group crashes within one
-- project. Secrets (ingest keys, tokens) are kept only as SHA-256 digests.

CREATE TABLE projects (
    id         BIGSERIAL PRIMARY KEY,
    slug       TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);
INSERT INTO projects (id, slug, name, created_at) VALUES (1, 'default', 'Default', 0);
-- The explicit id 1 did not advance the sequence.
SELECT setval(pg_get_serial_sequence('projects', 'id'), 1);

CREATE TABLE ingest_keys (
    id         TEXT   PRIMARY KEY,
    project_id BIGINT NOT NULL,
    key_digest TEXT   NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX ingest_keys_project ON ingest_keys (project_id);

CREATE TABLE api_tokens (
    id           TEXT   PRIMARY KEY,
    name         TEXT   NOT NULL,
    token_digest TEXT   NOT NULL UNIQUE,
    scopes       TEXT   NOT NULL,
    projects     TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

ALTER TABLE crash_groups ADD COLUMN project_id BIGINT NOT NULL DEFAULT 1;
ALTER TABLE crashes ADD COLUMN project_id BIGINT NOT NULL DEFAULT 1;
ALTER TABLE ingest_queue ADD COLUMN project_id BIGINT NOT NULL DEFAULT 1;
CREATE INDEX crash_groups_project ON crash_groups (project_id, last_seen);

ALTER TABLE group_fingerprints ADD COLUMN project_id BIGINT NOT NULL DEFAULT 1;
ALTER TABLE group_fingerprints DROP CONSTRAINT group_fingerprints_pkey;
ALTER TABLE group_fingerprints ADD PRIMARY KEY (project_id, fingerprint);
