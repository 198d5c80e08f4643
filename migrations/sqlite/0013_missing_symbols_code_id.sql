-- The code ID (PE timestamp+size, ELF build ID, Mach-O UUID) of a module a crash had no
-- symbols for: with it a build engineer finds the exact binary to upload
-- (GET /api/v1/symbols/missing).
ALTER TABLE crash_missing_symbols ADD COLUMN code_id TEXT;
