-- The CPU architecture a crash ran on (from the dump's system info), for a group's breakdowns;
-- the covering index of those breakdowns takes it too.
ALTER TABLE crashes ADD COLUMN cpu TEXT;
DROP INDEX crashes_group_attributes;
CREATE INDEX crashes_group_attributes ON crashes (group_id, release, platform, product, cpu);
