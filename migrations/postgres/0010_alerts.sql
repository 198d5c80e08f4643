-- The Postgres twin of migrations/sqlite/0010.
-- Alerts (docs/ALERTS.md): channels say where a message goes (webhook, Slack, PagerDuty, email);
-- rules say when a project's groups deserve one. A firing is written in the same transaction as
-- the crash that caused it, with one delivery per action: the durable outbox that the
-- dispatcher drains, with retries, until each delivery is `delivered` or `dead`.

CREATE TABLE alert_channels (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL,
    name        TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    -- The channel's settings as JSON, secrets included: they must be sent to the other side,
    -- so they cannot be hashed; the API never returns them.
    config      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX alert_channels_project ON alert_channels (project_id);

CREATE TABLE alert_rules (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL,
    name        TEXT   NOT NULL,
    enabled     BIGINT NOT NULL DEFAULT 1,
    -- Triggers, conditions, group filters, actions and interval as JSON (see src/alerts/rules.rs).
    definition  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX alert_rules_project ON alert_rules (project_id);

-- When a rule last fired for a group: the action interval. Claimed with an upsert whose
-- condition is the interval, so two writers (two nodes) never both fire within it.
CREATE TABLE alert_cooldowns (
    rule_id   BIGINT NOT NULL,
    group_id  BIGINT NOT NULL,
    fired_at  BIGINT NOT NULL,
    PRIMARY KEY (rule_id, group_id)
);

CREATE TABLE alert_fires (
    id          BIGSERIAL PRIMARY KEY,
    rule_id     BIGINT NOT NULL,
    project_id  BIGINT NOT NULL,
    group_id    BIGINT NOT NULL,
    crash_id    TEXT   NOT NULL,
    -- The trigger that fired (`new_group`, `regression`, `woke`, `events`, `users`, `spike`,
    -- `every_crash`) and why, as JSON (counts, the condition entry that submitted it).
    trigger     TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    fired_at    BIGINT NOT NULL
);
CREATE INDEX alert_fires_project ON alert_fires (project_id, id);
CREATE INDEX alert_fires_group ON alert_fires (group_id);

CREATE TABLE alert_deliveries (
    -- A UUID that stays the same across retries (receivers de-duplicate on it).
    id              TEXT   PRIMARY KEY,
    fire_id         BIGINT,
    channel_id      BIGINT NOT NULL,
    project_id      BIGINT NOT NULL,
    -- What is sent: the message as JSON, fixed when the delivery is created.
    message         TEXT   NOT NULL,
    -- `pending` (waiting for its next attempt), `delivered`, or `dead` (out of attempts).
    state           TEXT   NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_by      TEXT,
    lease_until     BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    response        TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_attempt_at);
CREATE INDEX alert_deliveries_project ON alert_deliveries (project_id, created_at);
