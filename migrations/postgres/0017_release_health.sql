-- The Postgres twin of migrations/sqlite/0017.
-- Release health (docs/HEALTH.md): sessions counted per project, release, environment and hour;
-- each session's state (so an update is counted once, whatever order updates arrive in); the
-- distinct users (Sentry's `did`) per release, environment and day, with whether one crashed.
CREATE TABLE session_hours (
    project_id     BIGINT NOT NULL,
    release        TEXT   NOT NULL,
    environment    TEXT   NOT NULL,
    hour           BIGINT NOT NULL,
    sessions       BIGINT NOT NULL DEFAULT 0,
    exited         BIGINT NOT NULL DEFAULT 0,
    errored        BIGINT NOT NULL DEFAULT 0,
    abnormal       BIGINT NOT NULL DEFAULT 0,
    crashed        BIGINT NOT NULL DEFAULT 0,
    -- Users a launcher or backend reported for the hour (`POST /api/v1/usage`).
    reported_users BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, release, environment, hour)
);
CREATE INDEX session_hours_hour ON session_hours (project_id, hour);

CREATE TABLE session_states (
    project_id   BIGINT NOT NULL,
    sid          TEXT   NOT NULL,
    release      TEXT   NOT NULL,
    environment  TEXT   NOT NULL,
    hour         BIGINT NOT NULL,
    did          TEXT,
    -- 1 once its `init` update was counted.
    counted      BIGINT NOT NULL DEFAULT 0,
    -- The final status counted for it: exited, errored, abnormal or crashed.
    final_status TEXT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (project_id, sid)
);
CREATE INDEX session_states_updated ON session_states (updated_at);

CREATE TABLE session_users (
    project_id  BIGINT NOT NULL,
    release     TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    day         BIGINT NOT NULL,
    did         TEXT   NOT NULL,
    crashed     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, release, environment, day, did)
);

-- Every release's totals, kept by the writer in the same transaction as the hours (the
-- releases page reads one row per release, not a year of hours).
CREATE TABLE session_releases (
    project_id     BIGINT NOT NULL,
    release        TEXT   NOT NULL,
    sessions       BIGINT NOT NULL DEFAULT 0,
    crashed        BIGINT NOT NULL DEFAULT 0,
    errored        BIGINT NOT NULL DEFAULT 0,
    abnormal       BIGINT NOT NULL DEFAULT 0,
    ended          BIGINT NOT NULL DEFAULT 0,
    reported_users BIGINT NOT NULL DEFAULT 0,
    users          BIGINT NOT NULL DEFAULT 0,
    crashed_users  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, release)
);

-- Each release's distinct users, all time (what `session_releases.users` counts).
CREATE TABLE session_release_users (
    project_id BIGINT NOT NULL,
    release    TEXT   NOT NULL,
    did        TEXT   NOT NULL,
    crashed    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, release, did)
);

-- A release's crash reports, counted when its sessions carry no status (usage) and by alert
-- rules on crash-free rates.
CREATE INDEX crashes_release ON crashes (project_id, release);
