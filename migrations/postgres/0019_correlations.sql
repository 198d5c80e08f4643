-- A group's crash correlations as last computed (docs/EVIDENCE.md): when, the group's crash
-- count then (computed again once it grew by a quarter), and the report (JSON).
CREATE TABLE group_correlations (
    group_id     BIGINT NOT NULL PRIMARY KEY,
    computed_at  BIGINT NOT NULL,
    group_events BIGINT NOT NULL,
    report       TEXT   NOT NULL
);

-- The reference set of correlations: a project's crashes of a window.
CREATE INDEX crashes_project_received ON crashes (project_id, received_at);
