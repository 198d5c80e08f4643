-- What to upload for a module a crash had no symbols for: its debug file and code file names
-- beside the debug ID (the web UI's missing-symbols page lists them with the upload command).
ALTER TABLE crash_missing_symbols ADD COLUMN debug_file TEXT;
ALTER TABLE crash_missing_symbols ADD COLUMN code_file TEXT;
