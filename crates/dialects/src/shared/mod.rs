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
