-- What a crash was received as: a minidump (with or without a Sentry event beside it) or an
-- error event from a Sentry SDK (stack traces in JSON, no dump).
ALTER TABLE crashes ADD COLUMN kind TEXT NOT NULL DEFAULT 'minidump';
