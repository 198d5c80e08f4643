-- Distinct users past the exact-count limit (docs/HEALTH.md). A user set is a release's users
-- in one environment and day, or all time (environment '' and day -1, which replaces
-- `session_release_users`); its users are kept exactly in `session_users` up to a limit, then
-- counted by a HyperLogLog sketch of 16,384 registers, one row per register, merged by maximum.
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

INSERT INTO session_users (project_id, release, environment, day, did, crashed)
    SELECT project_id, release, '', -1, did, crashed FROM session_release_users;
DROP TABLE session_release_users;

INSERT INTO session_user_sets (project_id, release, environment, day, users, crashed_users)
    SELECT project_id, release, environment, day, COUNT(*), CAST(SUM(crashed) AS BIGINT)
    FROM session_users GROUP BY project_id, release, environment, day;
