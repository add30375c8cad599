-- Projects: as migrations/sqlite/0007_projects.sql.

CREATE TABLE projects (
    id         TEXT COLLATE "C" PRIMARY KEY,
    account_id TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    starts_at  BIGINT,
    ends_at    BIGINT,
    template   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX projects_by_account ON projects (account_id, id);
