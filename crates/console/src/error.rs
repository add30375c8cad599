//! What a console page answers when it cannot show what was asked: the
//! sign-in form (no session), "not found" (also for another account's job
//! or project: nothing tells them apart), or a plain error page.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use genq_engine::EngineError;

use crate::view::{html, Layout};

#[derive(Debug)]
pub(crate) enum PageError {
    /// No live session: go and sign in.
    SignIn,
    NotFound,
    /// The outputs were deleted by the retention sweep.
    Gone,
    /// A form post without the session's CSRF token or from another origin.
    Forbidden,
    BadRequest(String),
    /// The database or storage failed; the page may be tried again.
    Unavailable(String),
    Internal(String),
}

impl From<EngineError> for PageError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound | EngineError::ProjectNotFound => PageError::NotFound,
            EngineError::NotCancellable(state) => PageError::BadRequest(format!(
                "This job is {state} and can no longer be cancelled."
            )),
            EngineError::InvalidInput { message, .. } => PageError::BadRequest(message),
            EngineError::Db(_) | EngineError::Files(_) => PageError::Unavailable(e.to_string()),
            other => PageError::Internal(other.to_string()),
        }
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::Internal(format!("rendering a page: {e}"))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    heading: &'static str,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match self {
            PageError::SignIn => return Redirect::to("/console/sign-in").into_response(),
            PageError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here: the address is wrong, or it is not yours.".to_owned(),
            ),
            PageError::Gone => (
                StatusCode::GONE,
                "Expired",
                "This file was deleted after its retention period.".to_owned(),
            ),
            PageError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Refused",
                "This request did not come from a console page of this server. Reload the page and try again.".to_owned(),
            ),
            PageError::BadRequest(message) => (StatusCode::BAD_REQUEST, "Cannot do that", message),
            PageError::Unavailable(detail) => {
                tracing::error!(error = %detail, "a console page failed: the database or storage failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Unavailable",
                    "genq cannot reach its database or storage just now. Try again in a moment.".to_owned(),
                )
            }
            PageError::Internal(detail) => {
                tracing::error!(error = %detail, "a console page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "genq could not show this page. Try again in a moment.".to_owned(),
                )
            }
        };
        let page = ErrorPage {
            layout: Layout::signed_out(heading),
            heading,
            message,
        };
        match page.render() {
            Ok(body) => html(status, body),
            Err(_) => (status, heading).into_response(),
        }
    }
}
