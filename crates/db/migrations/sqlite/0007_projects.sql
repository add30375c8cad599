-- Projects: templates an account renders jobs from (engine/src/project.rs).
-- The template is the author's JSON text, kept as written.

CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    starts_at  INTEGER,
    ends_at    INTEGER,
    template   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX projects_by_account ON projects (account_id, id);
