//! genq's engine: one durable job database that is also the queue, workers
//! that claim jobs with leases, the files where inputs and outputs live, the
//! event bus that announces every change of a job, and the webhook outbox.
//!
//! Nothing here knows about HTTP or any API dialect. Dialects call
//! [`Engine`]; renderers implement [`Renderer`]; backends implement
//! [`Database`] and [`FileStore`].
//!
//! Modules depend one way: `ids` and `time`; then `account`, `job` and
//! `webhook` (its types and rules), `project`; then `events`, `db` and `files`; then
//! [`Engine`]; then `worker` and `dispatcher`, which run on an engine and
//! hear from it through the bus.

pub mod account;
pub mod db;
pub mod dispatcher;
mod engine;
mod error;
pub mod events;
pub mod files;
pub mod health;
pub mod idempotency;
pub mod ids;
pub mod job;
pub mod metrics;
pub mod project;
pub mod retention;
mod sessions;
mod submit;
pub mod time;
pub mod webhook;
pub mod worker;

pub use account::{Account, Principal};
pub use db::{Database, DbError};
pub use engine::{Engine, NewJob, StagedInput};
pub use error::EngineError;
pub use events::{Interest, JobEvent, Notice};
pub use files::{ByteStream, FileStore, LocalFiles};
pub use ids::{AccountId, JobId, KeyId, ProjectId};
pub use job::{
    Job, JobFailure, JobOutput, JobQuery, JobState, LimitKind, ModelRef, OutputKind, OutputRole,
    SubmitLimits,
};
pub use project::{NewProject, Project};
pub use worker::{
    JobContext, JobHandler, ModelFile, ModelRunner, ProducedOutput, Renderer, WorkerConfig,
    WorkerPool,
};
