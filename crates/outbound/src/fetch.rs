//! Fetching job inputs (and model outputs) given as URLs: `http`, `https`
//! and `data:` URIs, streamed to a file under a size limit.
//!
//! HTTP goes through [`OutboundPolicy::client`], so the address guard, the
//! refusal to follow redirects and the timeouts are the webhook ones.
//! `data:` URIs are decoded in small chunks, so a huge one costs no more
//! memory than a small one and is cut off once the decoded size crosses the
//! limit.

use std::path::Path;
use std::time::Duration;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use tokio::io::AsyncWriteExt;

use crate::{error_chain, OutboundError, OutboundPolicy};

/// How many leading bytes are kept for magic-byte sniffing.
const SNIFF_LEN: usize = 8192;
/// Base64 characters decoded at a time (a multiple of 4).
const B64_CHUNK: usize = 64 * 1024;
/// How much of a URL an error message shows.
const SHOWN_URL_CHARS: usize = 80;

/// Browsers accept data URIs with or without `=` padding; so do we.
const DATA_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Fetches URLs to files under one policy, size limit and timeout.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: OutboundPolicy,
    max_bytes: u64,
}

/// What was fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes written.
    pub size: u64,
    /// MIME type from the magic bytes, if recognised.
    pub sniffed: Option<&'static str>,
    /// The `Content-Type` header or the data URI's media type, as given
    /// (`None` when absent; a data URI without one is not assumed to be
    /// `text/plain`, so callers fall back to sniffing).
    pub declared: Option<String>,
}

/// Why a fetch failed. The messages are shown to users (they end up in a
/// job's error), so each names the URL, shortened.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("refused to fetch {url}: {reason}")]
    Refused { url: String, reason: String },
    #[error("{url} is larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{}", http_message(url, *status))]
    Http { url: String, status: u16 },
    #[error("timed out fetching {url}")]
    Timeout { url: String },
    #[error("could not fetch {url}: {reason}")]
    Network { url: String, reason: String },
    #[error("could not store {url}: {source}")]
    Io {
        url: String,
        #[source]
        source: std::io::Error,
    },
}

fn http_message(url: &str, status: u16) -> String {
    if (300..400).contains(&status) {
        format!("{url} answered with a redirect (HTTP {status}); redirects are not followed")
    } else {
        format!("{url} answered HTTP {status}")
    }
}

impl Fetcher {
    pub fn new(
        policy: &OutboundPolicy,
        max_bytes: u64,
        timeout: Duration,
    ) -> Result<Self, OutboundError> {
        Ok(Self {
            client: policy.client(timeout)?,
            policy: policy.clone(),
            max_bytes,
        })
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Streams the resource to `dst` (created or truncated), never holding it
    /// whole in memory, and stops once it exceeds the size limit. On any
    /// error `dst` is removed.
    pub async fn fetch_to(&self, url: &str, dst: &Path) -> Result<Fetched, FetchError> {
        let url = url.trim();
        let shown = shorten(url);
        let parsed = if starts_with_ignore_case(url, "data:") {
            None
        } else {
            Some(self.check(url, &shown)?)
        };
        let mut sink = Sink::create(dst, &shown).await?;
        let result = match parsed {
            None => self.decode_data(url, &shown, &mut sink).await,
            Some(parsed) => self.get(parsed, &shown, &mut sink).await,
        };
        match result {
            Ok(declared) => {
                sink.finish().await?;
                Ok(Fetched {
                    size: sink.written,
                    sniffed: infer::get(&sink.head).map(|kind| kind.mime_type()),
                    declared,
                })
            }
            Err(error) => {
                drop(sink);
                let _ = tokio::fs::remove_file(dst).await;
                Err(error)
            }
        }
    }

    /// Scheme and literal addresses; names are checked by the client's
    /// resolver when it connects.
    fn check(&self, url: &str, shown: &str) -> Result<url::Url, FetchError> {
        let invalid = |reason: String| FetchError::InvalidUrl {
            url: shown.to_owned(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "scheme {} is not supported (use https, http or data)",
                parsed.scheme()
            )));
        }
        self.policy
            .check_url(&parsed, &["http", "https"])
            .map_err(|e| match e {
                OutboundError::Refused(reason) => FetchError::Refused {
                    url: shown.to_owned(),
                    reason,
                },
                OutboundError::InvalidUrl(reason) => invalid(reason),
                other => invalid(other.to_string()),
            })?;
        Ok(parsed)
    }

    async fn get(
        &self,
        parsed: url::Url,
        shown: &str,
        sink: &mut Sink,
    ) -> Result<Option<String>, FetchError> {
        let mut response = self
            .client
            .get(parsed)
            .send()
            .await
            .map_err(|e| request_error(&e, shown))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Http {
                url: shown.to_owned(),
                status: status.as_u16(),
            });
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes)
        {
            return Err(self.too_large(shown));
        }
        let declared = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| request_error(&e, shown))?
        {
            self.write_limited(sink, &chunk, shown).await?;
        }
        Ok(declared)
    }

    /// RFC 2397: `data:[<mediatype>][;base64],<data>`. The data may be
    /// percent-encoded in either form.
    async fn decode_data(
        &self,
        url: &str,
        shown: &str,
        sink: &mut Sink,
    ) -> Result<Option<String>, FetchError> {
        let invalid = |reason: &str| FetchError::InvalidUrl {
            url: shown.to_owned(),
            reason: reason.to_owned(),
        };
        let (header, payload) = url["data:".len()..]
            .split_once(',')
            .ok_or_else(|| invalid("a data URI needs a comma before its data"))?;
        let mut params: Vec<&str> = header.split(';').map(str::trim).collect();
        let base64 = params
            .last()
            .is_some_and(|last| last.eq_ignore_ascii_case("base64"));
        if base64 {
            params.pop();
        }
        let declared = match params.as_slice() {
            [] | [""] => None,
            ["", rest @ ..] => Some(format!("text/plain;{}", rest.join(";"))),
            all => Some(all.join(";")),
        };
        let mut bytes = PercentDecoded::new(payload.as_bytes());
        if !base64 {
            let mut buf = Vec::with_capacity(B64_CHUNK.min(payload.len()));
            loop {
                buf.clear();
                buf.extend(bytes.by_ref().take(B64_CHUNK));
                if buf.is_empty() {
                    return Ok(declared);
                }
                self.write_limited(sink, &buf, shown).await?;
            }
        }
        let mut text = Vec::with_capacity(B64_CHUNK.min(payload.len()));
        let mut decoded = Vec::with_capacity(B64_CHUNK / 4 * 3);
        let mut padding = false;
        loop {
            text.clear();
            for byte in bytes.by_ref() {
                match byte {
                    b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => continue,
                    b'=' => padding = true,
                    _ if padding => return Err(invalid("base64 data continues after padding")),
                    _ => {}
                }
                text.push(byte);
                if text.len() == B64_CHUNK {
                    break;
                }
            }
            if text.is_empty() {
                return Ok(declared);
            }
            decoded.clear();
            DATA_BASE64
                .decode_vec(&text, &mut decoded)
                .map_err(|e| invalid(&format!("bad base64 data: {e}")))?;
            self.write_limited(sink, &decoded, shown).await?;
        }
    }

    async fn write_limited(
        &self,
        sink: &mut Sink,
        bytes: &[u8],
        shown: &str,
    ) -> Result<(), FetchError> {
        if sink.written + bytes.len() as u64 > self.max_bytes {
            return Err(self.too_large(shown));
        }
        sink.write(bytes).await
    }

    fn too_large(&self, shown: &str) -> FetchError {
        FetchError::TooLarge {
            url: shown.to_owned(),
            limit: self.max_bytes,
        }
    }
}

/// The destination file, counting bytes and keeping the head for sniffing.
struct Sink {
    file: tokio::fs::File,
    written: u64,
    head: Vec<u8>,
    shown: String,
}

impl Sink {
    async fn create(path: &Path, shown: &str) -> Result<Self, FetchError> {
        let file = tokio::fs::File::create(path)
            .await
            .map_err(|source| FetchError::Io {
                url: shown.to_owned(),
                source,
            })?;
        Ok(Self {
            file,
            written: 0,
            head: Vec::new(),
            shown: shown.to_owned(),
        })
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), FetchError> {
        if self.head.len() < SNIFF_LEN {
            let take = bytes.len().min(SNIFF_LEN - self.head.len());
            self.head.extend_from_slice(&bytes[..take]);
        }
        self.file.write_all(bytes).await.map_err(|e| self.io(e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), FetchError> {
        self.file.flush().await.map_err(|e| self.io(e))
    }

    fn io(&self, source: std::io::Error) -> FetchError {
        FetchError::Io {
            url: self.shown.clone(),
            source,
        }
    }
}

/// Decodes `%XX` escapes on the fly; a `%` not followed by two hex digits
/// stays as it is (as browsers do).
struct PercentDecoded<'a> {
    bytes: &'a [u8],
}

impl<'a> PercentDecoded<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }
}

impl Iterator for PercentDecoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.bytes.split_first()?;
        if first == b'%' {
            if let [hi, lo, tail @ ..] = rest {
                if let (Some(hi), Some(lo)) = (hex(*hi), hex(*lo)) {
                    self.bytes = tail;
                    return Some(hi << 4 | lo);
                }
            }
        }
        self.bytes = rest;
        Some(first)
    }
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

fn request_error(error: &reqwest::Error, shown: &str) -> FetchError {
    if error.is_timeout() {
        return FetchError::Timeout {
            url: shown.to_owned(),
        };
    }
    // The guarding resolver's refusal is buried in reqwest's source chain.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(OutboundError::Refused(reason)) = cause.downcast_ref::<OutboundError>() {
            return FetchError::Refused {
                url: shown.to_owned(),
                reason: reason.clone(),
            };
        }
        source = cause.source();
    }
    FetchError::Network {
        url: shown.to_owned(),
        reason: error_chain(error),
    }
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// A URL short enough for an error message. Data URIs in particular can be
/// megabytes long and say nothing useful past their media type.
pub fn shorten(url: &str) -> String {
    let chars = url.chars().count();
    if chars <= SHOWN_URL_CHARS {
        return url.to_owned();
    }
    let head: String = url.chars().take(SHOWN_URL_CHARS).collect();
    format!("{head}… ({chars} characters)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_stray_percent_signs() {
        let decoded: Vec<u8> = PercentDecoded::new(b"a%20b%2x%").collect();
        assert_eq!(decoded, b"a b%2x%");
    }

    #[test]
    fn long_urls_are_shortened_on_character_boundaries() {
        let url = format!("data:text/plain,{}", "é".repeat(200));
        let shown = shorten(&url);
        assert!(shown.starts_with("data:text/plain,éé"), "{shown}");
        assert!(shown.ends_with("(216 characters)"), "{shown}");
        assert_eq!(shorten("https://example.com/a"), "https://example.com/a");
    }
}
