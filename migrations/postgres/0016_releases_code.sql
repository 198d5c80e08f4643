-- The Postgres twin of migrations/sqlite/0016.
-- Releases, the code behind them, and suspect commits (docs/CODE.md).
-- A release is per project (Sentry's organization-wide release is one row per project it names).
CREATE TABLE releases (
    id          BIGSERIAL PRIMARY KEY,
    project_id  BIGINT NOT NULL,
    version     TEXT   NOT NULL,
    -- The VCS ref the build was made from, and a link to the release (as given).
    vcs_ref     TEXT,
    url         TEXT,
    created_at  BIGINT NOT NULL,
    -- When it was released (finalized); NULL while it is not.
    released_at BIGINT,
    UNIQUE (project_id, version)
);

-- A release's head commit per repository, and the commit before its range (the previous
-- release's head, or the `previousCommit` it was given).
CREATE TABLE release_heads (
    release_id      BIGINT NOT NULL,
    repository      TEXT   NOT NULL,
    head_commit     TEXT   NOT NULL,
    previous_commit TEXT,
    PRIMARY KEY (release_id, repository)
);

-- The commits a release brought, newest first (`position` 0 is the head).
CREATE TABLE release_commits (
    release_id     BIGINT NOT NULL,
    repository     TEXT   NOT NULL,
    sha            TEXT   NOT NULL,
    position       BIGINT NOT NULL,
    author_name    TEXT,
    author_email   TEXT,
    message        TEXT,
    committed_at   BIGINT,
    -- The paths it changed, one per line.
    files          TEXT   NOT NULL,
    -- The group its message says it fixes (`Fixes FAULTLINE-12`), if any.
    resolves_group BIGINT,
    PRIMARY KEY (release_id, repository, sha)
);
CREATE INDEX release_commits_resolves ON release_commits (resolves_group);

CREATE TABLE deploys (
    id          BIGSERIAL PRIMARY KEY,
    release_id  BIGINT NOT NULL,
    environment TEXT   NOT NULL,
    name        TEXT,
    url         TEXT,
    started_at  BIGINT,
    finished_at BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX deploys_release ON deploys (release_id);

-- Repositories faultline keeps a mirror of (under the data folder).
CREATE TABLE repositories (
    id               BIGSERIAL PRIMARY KEY,
    -- The name releases use (`acme/game`, sentry-cli's `REPO@…`).
    name             TEXT   NOT NULL UNIQUE,
    -- Where it is fetched from: a URL or a local folder.
    remote           TEXT   NOT NULL,
    branch           TEXT   NOT NULL,
    -- A link to a line: {commit}, {path}, {line} (derived from the URL when NULL).
    web_url_template TEXT,
    -- An HTTPS token or an SSH key file (never returned, never logged).
    credential_kind  TEXT,
    credential       TEXT,
    created_at       BIGINT NOT NULL,
    fetched_at       BIGINT,
    fetch_error      TEXT
);

-- Where a frame's path is in a repository: `stack_root` replaced by `source_root`.
CREATE TABLE code_mappings (
    id            BIGSERIAL PRIMARY KEY,
    project_id    BIGINT NOT NULL,
    repository_id BIGINT NOT NULL,
    stack_root    TEXT   NOT NULL,
    source_root   TEXT   NOT NULL,
    -- `user` (set by a person, wins) or `derived` (found from a frame's path).
    origin        TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (project_id, repository_id, stack_root)
);

-- A group's suspect commits as last computed, with their inputs and reasons (JSON).
CREATE TABLE group_suspects (
    group_id    BIGINT NOT NULL PRIMARY KEY,
    release_id  BIGINT,
    computed_at BIGINT NOT NULL,
    -- Set when a release gained commits or a repository was fetched: compute again.
    stale       BIGINT NOT NULL DEFAULT 0,
    report      TEXT   NOT NULL
);
