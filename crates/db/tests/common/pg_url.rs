//! Where the PostgreSQL tests make their databases. Shared by the store's
//! and genq's end-to-end test helpers (genq includes this file by path).

/// The server to create databases on; None when PostgreSQL tests are off
/// (`GENQ_TEST_POSTGRES_URL=off`).
pub fn base_url() -> Option<String> {
    match std::env::var("GENQ_TEST_POSTGRES_URL") {
        Ok(url) if url.is_empty() || url == "off" => None,
        Ok(url) => Some(url),
        Err(_) => Some("postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
    }
}

/// `base` with its database replaced by `name` (query string kept).
pub fn with_database(base: &str, name: &str) -> String {
    let (base, query) = base.split_once('?').unwrap_or((base, ""));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| i + authority);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{name}{query}", &base[..path])
}
