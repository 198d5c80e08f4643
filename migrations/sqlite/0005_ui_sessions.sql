-- Web UI sign-in sessions (the same table on SQLite and Postgres): a browser signs in with an API token and gets a random session
-- cookie; only its SHA-256 digest is kept. A session acts with its token's scopes and projects,
-- and ends when it expires, when the user signs out, or when the token is revoked or expires.

CREATE TABLE ui_sessions (
    session_digest TEXT   PRIMARY KEY,
    token_id       TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX ui_sessions_token ON ui_sessions (token_id);
CREATE INDEX ui_sessions_expiry ON ui_sessions (expires_at);
