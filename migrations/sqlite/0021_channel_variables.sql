-- A channel may carry the fault frame's variables in its messages (docs/VARIABLES.md): they can
-- hold personal data, so only a channel created with `include_variables` does (0: never).
ALTER TABLE alert_channels ADD COLUMN include_variables BIGINT NOT NULL DEFAULT 0;
