-- The crash index: groups (with every fingerprint they have matched), crashes, and the counters
-- that triage needs. The Postgres twin of migrations/sqlite/0001 (BIGSERIAL ids).

CREATE TABLE crash_groups (
    id              BIGSERIAL PRIMARY KEY,
    signature       TEXT    NOT NULL,
    fault_class     TEXT    NOT NULL,
    first_seen      BIGINT  NOT NULL,
    last_seen       BIGINT  NOT NULL,
    event_count     BIGINT  NOT NULL DEFAULT 0,
    user_count      BIGINT  NOT NULL DEFAULT 0,
    first_release   TEXT,
    last_release    TEXT,
    state           TEXT    NOT NULL DEFAULT 'open',
    assignee        TEXT,
    resolved_in     TEXT,
    regressed       BIGINT  NOT NULL DEFAULT 0,
    merged_into     BIGINT,
    payloads_kept   BIGINT  NOT NULL DEFAULT 0,
    payloads_dropped BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE group_fingerprints (
    fingerprint TEXT   PRIMARY KEY,
    group_id    BIGINT NOT NULL
);
CREATE INDEX group_fingerprints_group ON group_fingerprints (group_id);

CREATE TABLE crashes (
    id          TEXT   PRIMARY KEY,
    received_at BIGINT NOT NULL,
    product     TEXT,
    release     TEXT,
    platform    TEXT,
    user_id     TEXT,
    annotations TEXT   NOT NULL,
    fingerprint TEXT   NOT NULL,
    signature   TEXT   NOT NULL,
    fault_class TEXT   NOT NULL,
    group_id    BIGINT NOT NULL,
    state       TEXT   NOT NULL,
    payload_key TEXT
);
CREATE INDEX crashes_group ON crashes (group_id, received_at);
CREATE INDEX crashes_received ON crashes (received_at);

CREATE TABLE crash_annotations (
    crash_id TEXT NOT NULL,
    name     TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (crash_id, name)
);
CREATE INDEX crash_annotations_value ON crash_annotations (name, value);

CREATE TABLE group_users (
    group_id BIGINT NOT NULL,
    user_id  TEXT   NOT NULL,
    PRIMARY KEY (group_id, user_id)
);

CREATE TABLE group_hours (
    group_id BIGINT NOT NULL,
    hour     BIGINT NOT NULL,
    events   BIGINT NOT NULL,
    payloads BIGINT NOT NULL,
    PRIMARY KEY (group_id, hour)
);
