-- A mute that ends after N more distinct users (`mute_until_users`: the user count at which the
-- group wakes), beside the date and crash-count ends of migration 0008.
ALTER TABLE crash_groups ADD COLUMN mute_until_users BIGINT;
