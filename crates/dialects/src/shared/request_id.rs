//! Every response carries `X-Request-Id`; error bodies that quote it (the
//! Jobs v1 dialect's `requestId`) read it from the request's task.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The current request's id, or a fresh one outside a request.
pub fn current() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| new_id())
}

fn new_id() -> String {
    format!("req_{}", uuid::Uuid::now_v7().simple())
}

pub async fn assign(request: Request, next: Next) -> Response {
    let id = new_id();
    let header = HeaderValue::from_str(&id).expect("ids are ASCII");
    let mut response = REQUEST_ID.scope(id, next.run(request)).await;
    response.headers_mut().insert("x-request-id", header);
    response
}
