//! genq's engine: one durable job store that is also the queue, workers that
//! claim jobs with leases, and the storage where inputs and outputs live.
//!
//! Nothing here knows about HTTP or any API dialect. Dialects call [`Engine`];
//! renderers implement [`JobHandler`]; backends implement [`Store`] and
//! [`Storage`].

pub mod account;
pub mod catalog;
mod engine;
mod error;
pub mod job;
pub mod storage;
pub mod store;
pub mod time;
pub mod webhook;
pub mod worker;

pub use account::{Account, AccountId, KeyId, Principal, ALL_SCOPES};
pub use engine::{Engine, NewJob, StagedInput};
pub use error::EngineError;
pub use job::{
    Job, JobFailure, JobId, JobOutput, JobQuery, JobState, OutputKind, OutputRole, SubmitLimits,
};
pub use storage::{ByteStream, LocalStorage, Storage};
pub use store::{Store, StoreError};
pub use worker::{JobContext, JobHandler, ProducedOutput, WorkerConfig, WorkerPool};
