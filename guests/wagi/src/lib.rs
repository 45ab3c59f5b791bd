//! What the test guests share: reading a number from the request's query string.

/// The value of `name` in `QUERY_STRING` (`a=1&b=2`), parsed; `None` when absent or unparsable.
pub fn query_param<T: std::str::FromStr>(name: &str) -> Option<T> {
    let qs = std::env::var("QUERY_STRING").ok()?;
    qs.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}
