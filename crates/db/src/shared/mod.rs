//! Method bodies that are the same on both backends, written once and
//! stamped into each backend's impl of the trait they belong to.
//!
//! sqlx's types differ per backend (`Pool<Sqlite>`, `Pool<Postgres>`), and
//! code generic over them needs a bound for every type bound and decoded, so
//! the shared bodies are macros over the backend's type instead. Each
//! backend gives them `reads()` and `writes()` (its pools), `begin()` (a
//! transaction on the write pool), and, in scope where the macro is used,
//! `settle` (what a terminal state owes: backend-specific). Each macro takes
//! the trait's remaining methods, the ones that differ, as they are written
//! in the backend's file.

mod accounts;
mod jobs;
mod outbox;
mod projects;
mod queue;

pub(crate) use accounts::{account_db, post_ledger};
pub(crate) use jobs::job_db;
pub(crate) use outbox::outbox_db;
pub(crate) use projects::project_db;
pub(crate) use queue::queue_db;
