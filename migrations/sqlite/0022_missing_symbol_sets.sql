-- The modules a crash lacked symbols for, stored once per distinct set instead of once per
-- crash: crashes of one build lack the same modules (twenty-odd rows per crash were half of
-- what the database did while a backlog drained). A set is named by the SHA-256 of its
-- modules; a crash points at its set. Sets no crash points at are swept by retention once
-- unused for a day.
CREATE TABLE missing_symbol_sets (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    digest  TEXT    NOT NULL UNIQUE,
    used_at BIGINT  NOT NULL
);

CREATE TABLE missing_symbol_set_modules (
    set_id     BIGINT NOT NULL REFERENCES missing_symbol_sets (id) ON DELETE CASCADE,
    debug_id   TEXT   NOT NULL,
    debug_file TEXT,
    code_file  TEXT,
    code_id    TEXT,
    PRIMARY KEY (set_id, debug_id)
);
CREATE INDEX missing_symbol_set_modules_debug ON missing_symbol_set_modules (debug_id);

CREATE TABLE crash_missing_symbol_sets (
    crash_id TEXT   PRIMARY KEY,
    set_id   BIGINT NOT NULL REFERENCES missing_symbol_sets (id)
);
CREATE INDEX crash_missing_symbol_sets_set ON crash_missing_symbol_sets (set_id);

-- What was recorded before: each crash's modules become a set of its own.
INSERT INTO missing_symbol_sets (digest, used_at)
    SELECT DISTINCT 'crash:' || crash_id, 0 FROM crash_missing_symbols;
INSERT INTO missing_symbol_set_modules (set_id, debug_id, debug_file, code_file, code_id)
    SELECT s.id, m.debug_id, m.debug_file, m.code_file, m.code_id
    FROM crash_missing_symbols m JOIN missing_symbol_sets s ON s.digest = 'crash:' || m.crash_id;
INSERT INTO crash_missing_symbol_sets (crash_id, set_id)
    SELECT substr(digest, 7), id FROM missing_symbol_sets WHERE digest LIKE 'crash:%';
DROP TABLE crash_missing_symbols;
