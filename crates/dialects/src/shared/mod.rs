//! Pieces every dialect uses. None of them decides a wire shape: each returns
//! plain results that the dialect renders in its own error format.

pub mod auth;
pub mod media;
pub mod rate_limit;
pub mod request_id;
pub mod upload;

/// A webhook URL as every dialect accepts it: absolute, https, with a host.
/// (Where it may point is checked at delivery, on the resolved address.)
pub fn validate_webhook_url(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("invalid URL: {e}"))?;
    if url.scheme() != "https" {
        return Err("it must start with https://".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    Ok(url.to_string())
}

/// The `limit` both list endpoints accept: 1–100, 20 when absent.
pub fn page_limit(raw: Option<&String>) -> Result<u32, &'static str> {
    match raw {
        None => Ok(20),
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or("limit must be an integer from 1 to 100"),
    }
}

/// One page of the caller's jobs, and whether more follow (the query asks
/// for one more than the page holds).
pub async fn page_of_jobs(
    engine: &genq_engine::Engine,
    principal: &genq_engine::Principal,
    mut query: genq_engine::JobQuery,
) -> Result<(Vec<genq_engine::Job>, bool), genq_engine::EngineError> {
    let limit = query.limit as usize;
    query.limit += 1;
    let mut jobs = engine.jobs(principal, &query).await?;
    let more = jobs.len() > limit;
    jobs.truncate(limit);
    Ok((jobs, more))
}
