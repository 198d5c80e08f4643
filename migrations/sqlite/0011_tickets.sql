-- Tickets (docs/ALERTS.md): the issue a tracker channel (Jira, GitHub) keeps for a group, and
-- what faultline last told the tracker, so that a tracker webhook echoing faultline's own
-- change is recognised and ignored (no ping-pong).
CREATE TABLE group_tickets (
    channel_id      BIGINT NOT NULL,
    group_id        BIGINT NOT NULL,
    -- `GAME-12` (Jira) or `42` (a GitHub issue number).
    ticket_key      TEXT   NOT NULL,
    ticket_url      TEXT   NOT NULL,
    -- `open` or `done`: what faultline last set or last heard.
    synced_state    TEXT   NOT NULL,
    synced_assignee TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (channel_id, group_id)
);
CREATE INDEX group_tickets_key ON group_tickets (channel_id, ticket_key);
CREATE INDEX group_tickets_group ON group_tickets (group_id);

-- Tracker webhook deliveries already applied (Jira's X-Atlassian-Webhook-Identifier, GitHub's
-- X-GitHub-Delivery): a redelivery changes nothing.
CREATE TABLE tracker_webhooks_seen (
    channel_id  BIGINT NOT NULL,
    delivery_id TEXT   NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (channel_id, delivery_id)
);
