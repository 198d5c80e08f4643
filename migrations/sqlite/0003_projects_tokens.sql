-- Projects, their ingest keys, and API tokens. Crashes, groups and queued crashes belong to a
-- project; fingerprints group crashes within one project. Secrets (ingest keys, tokens) are kept
-- only as SHA-256 digests.

CREATE TABLE projects (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    slug       TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);
INSERT INTO projects (id, slug, name, created_at) VALUES (1, 'default', 'Default', 0);

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

CREATE TABLE project_fingerprints (
    project_id  BIGINT NOT NULL,
    fingerprint TEXT   NOT NULL,
    group_id    BIGINT NOT NULL,
    PRIMARY KEY (project_id, fingerprint)
);
INSERT INTO project_fingerprints (project_id, fingerprint, group_id)
    SELECT 1, fingerprint, group_id FROM group_fingerprints;
DROP TABLE group_fingerprints;
ALTER TABLE project_fingerprints RENAME TO group_fingerprints;
CREATE INDEX group_fingerprints_group ON group_fingerprints (group_id);
