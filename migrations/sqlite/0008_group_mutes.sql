-- Mutes that end by themselves: a muted group wakes (back to open) with its first crash at or
-- after `muted_until` (Unix seconds), or once its event count reaches `mute_until_events`.
ALTER TABLE crash_groups ADD COLUMN muted_until BIGINT;
ALTER TABLE crash_groups ADD COLUMN mute_until_events BIGINT;
