//! One module per console page (or group of pages).

pub(crate) mod account;
pub(crate) mod job;
pub(crate) mod jobs;
pub(crate) mod projects;
pub(crate) mod submit;
