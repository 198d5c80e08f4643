-- Release health's tables (docs/HEALTH.md), in a SQLite file of their own beside the index
-- (`index-sessions.sqlite`): session updates outnumber crashes a hundred to one, and SQLite has
-- one writer per file, so the session writer commits here without holding the connection the
-- crash index commits on. Their Postgres twins are in migrations/postgres (0017, 0018, 0023),
-- in the one database; an index opened before this file existed has its session rows moved here once
-- (`CrashIndex::open`). Later changes to these tables are migrations in this folder.

-- Sessions counted per project, release, environment and hour.
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

-- Each session's state, so an update is counted once whatever order updates arrive in.
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
-- By hour: states are deleted once no update of them can be counted any more
-- (`CrashIndex::prune_session_states`).
CREATE INDEX session_states_hour ON session_states (hour);

-- The distinct users (Sentry's `did`) of a user set, with whether one crashed, kept exactly up
-- to a limit (a set: a release's users in one environment and day, or all time: environment ''
-- and day -1).
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

-- A user set's counts; past the exact limit its users are counted by a HyperLogLog sketch of
-- 16,384 registers, one row per register, merged by maximum.
CREATE TABLE session_user_sets (
    project_id        BIGINT NOT NULL,
    release           TEXT   NOT NULL,
    environment       TEXT   NOT NULL,
    day               BIGINT NOT NULL,
    users             BIGINT NOT NULL DEFAULT 0,
    crashed_users     BIGINT NOT NULL DEFAULT 0,
    -- 1 once past the exact limit: users and crashed_users are then the sketches' estimates.
    sketched          BIGINT NOT NULL DEFAULT 0,
    -- Each sketch's register histogram (how many registers hold each rank), comma-separated.
    users_histogram   TEXT,
    crashed_histogram TEXT,
    PRIMARY KEY (project_id, release, environment, day)
);

-- A sketched set's registers: `crashed` 0 for all its users, 1 for those with a crashed session.
CREATE TABLE session_user_sketches (
    project_id  BIGINT NOT NULL,
    release     TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    day         BIGINT NOT NULL,
    crashed     BIGINT NOT NULL,
    register    BIGINT NOT NULL,
    rank        BIGINT NOT NULL,
    PRIMARY KEY (project_id, release, environment, day, crashed, register)
);
