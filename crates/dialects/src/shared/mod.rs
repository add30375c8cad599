//! Pieces every dialect uses. None of them decides a wire shape: each returns
//! plain results that the dialect renders in its own error format.

pub mod auth;
pub mod media;
pub mod rate_limit;
pub mod upload;
