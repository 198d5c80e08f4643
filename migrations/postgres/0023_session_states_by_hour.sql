-- Session states are deleted by their hour once no update of them can be counted any more
-- (`CrashIndex::prune_session_states`): indexed by hour, not by when they were last written.
DROP INDEX session_states_updated;
CREATE INDEX session_states_hour ON session_states (hour);
