//! `allowed_hosts`: which outbound HTTP targets a component may call. Nothing is allowed unless
//! a pattern says so.
//!
//! Two dialects share the field, so configs written for either run unchanged:
//! - Spin's `scheme://host[:port]`, where the scheme, the host, a leading host label
//!   (`*.example.com`: subdomains only) or the port may be `*`; without a port the scheme's
//!   default port (80, 443) is meant. `https://api.example.com`, `http://localhost:8080`,
//!   `https://*.example.com`, `*://example.com:*`.
//! - WAGI's `https://host` (no port, no wildcard), which WAGI compared by host alone: any scheme,
//!   any port. This is the reading of such a pattern here; it is never stricter than Spin's.
//! - `insecure:allow-all` (WAGI and Spin): everything.

use http::Uri;

/// A function's parsed allow-list, built once at load.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowedHosts {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq)]
enum Pattern {
    AllowAll,
    /// WAGI: the host, whatever the scheme and port.
    Host(String),
    Spin {
        scheme: Option<String>,
        host: HostPattern,
        port: PortPattern,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Subdomain(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PortPattern {
    Any,
    Exact(u16),
    /// No port written: the default port of the request's scheme.
    SchemeDefault,
}

impl AllowedHosts {
    /// Parses every pattern, or says which one is malformed and why.
    pub fn parse(patterns: &[String]) -> Result<AllowedHosts, String> {
        let patterns = patterns.iter().map(|p| parse_pattern(p)).collect::<Result<Vec<_>, _>>()?;
        Ok(AllowedHosts { patterns })
    }

    /// Whether a request to `uri` (absolute: scheme and authority) may be sent.
    pub fn allows(&self, uri: &Uri) -> bool {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else { return false };
        let scheme = scheme.to_ascii_lowercase();
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let Some(port) = uri.port_u16().or_else(|| default_port(&scheme)) else { return false };
        self.patterns.iter().any(|pattern| match pattern {
            Pattern::AllowAll => true,
            Pattern::Host(h) => *h == host,
            Pattern::Spin { scheme: s, host: h, port: p } => {
                s.as_ref().is_none_or(|s| *s == scheme)
                    && match h {
                        HostPattern::Any => true,
                        HostPattern::Exact(h) => *h == host,
                        HostPattern::Subdomain(suffix) => host.ends_with(suffix.as_str()),
                    }
                    && match p {
                        PortPattern::Any => true,
                        PortPattern::Exact(p) => *p == port,
                        PortPattern::SchemeDefault => default_port(&scheme) == Some(port),
                    }
            }
        })
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

fn parse_pattern(text: &str) -> Result<Pattern, String> {
    let error = |why: &str| format!("allowed_hosts entry {text:?}: {why}");
    let trimmed = text.trim();
    if trimmed == "insecure:allow-all" {
        return Ok(Pattern::AllowAll);
    }
    let Some((scheme, rest)) = trimmed.split_once("://") else {
        return Err(error("expected scheme://host[:port] or insecure:allow-all"));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') {
        return Err(error("a path is not allowed, only scheme://host[:port]"));
    }
    let (host, port) = split_port(authority);
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    if host.is_empty() {
        return Err(error("the host is empty"));
    }
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "*" && default_port(&scheme).is_none() {
        return Err(error("the scheme must be http, https or *"));
    }
    let wildcard = scheme == "*" || host.contains('*') || port == Some("*");
    if !wildcard && port.is_none() {
        return Ok(Pattern::Host(host));
    }
    let host = if host == "*" {
        HostPattern::Any
    } else if let Some(suffix) = host.strip_prefix("*.") {
        if suffix.contains('*') || suffix.is_empty() {
            return Err(error("only a whole leading label may be `*` (`*.example.com`)"));
        }
        HostPattern::Subdomain(format!(".{suffix}"))
    } else if host.contains('*') {
        return Err(error("only a whole leading label may be `*` (`*.example.com`)"));
    } else {
        HostPattern::Exact(host)
    };
    let port = match port {
        None => PortPattern::SchemeDefault,
        Some("*") => PortPattern::Any,
        Some(p) => PortPattern::Exact(p.parse().map_err(|_| error("the port must be a number or `*`"))?),
    };
    let scheme = (scheme != "*").then_some(scheme);
    Ok(Pattern::Spin { scheme, host, port })
}

/// `host:port` into its parts; an IPv6 literal keeps its colons.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => (host, Some(port)),
        _ => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        patterns: &'static [&'static str],
        target: &'static str,
        allowed: bool,
    }

    #[test]
    fn patterns_allow_what_they_name_and_nothing_else() {
        let cases = [
            Case { patterns: &[], target: "http://example.com/", allowed: false },
            Case { patterns: &["insecure:allow-all"], target: "http://anything:1234/x", allowed: true },
            // Spin: exact scheme, host and port.
            Case { patterns: &["http://localhost:8080"], target: "http://localhost:8080/a", allowed: true },
            Case { patterns: &["http://localhost:8080"], target: "http://localhost:8081/a", allowed: false },
            Case { patterns: &["http://localhost:8080"], target: "https://localhost:8080/", allowed: false },
            Case { patterns: &["http://127.0.0.1:9"], target: "http://127.0.0.1:9/", allowed: true },
            // Spin: a subdomain wildcard, default port of the scheme.
            Case { patterns: &["https://*.example.com"], target: "https://api.example.com/", allowed: true },
            Case { patterns: &["https://*.example.com"], target: "https://a.b.example.com/", allowed: true },
            Case { patterns: &["https://*.example.com"], target: "https://example.com/", allowed: false },
            Case {
                patterns: &["https://*.example.com"],
                target: "https://api.example.com:8443/",
                allowed: false,
            },
            Case { patterns: &["https://*.example.com"], target: "http://api.example.com/", allowed: false },
            Case { patterns: &["https://*.example.com"], target: "https://badexample.com/", allowed: false },
            // Spin: any scheme, any port.
            Case { patterns: &["*://example.com:*"], target: "http://example.com:1/", allowed: true },
            Case { patterns: &["*://example.com:*"], target: "https://example.com/", allowed: true },
            Case { patterns: &["*://example.com:*"], target: "https://other.com/", allowed: false },
            Case { patterns: &["*://*:*"], target: "http://x.y:5/", allowed: true },
            // WAGI: host only.
            Case {
                patterns: &["https://api.example.com"],
                target: "https://api.example.com/",
                allowed: true,
            },
            Case {
                patterns: &["https://api.example.com"],
                target: "http://api.example.com:8080/",
                allowed: true,
            },
            Case {
                patterns: &["https://API.example.com/"],
                target: "https://api.EXAMPLE.com/",
                allowed: true,
            },
            Case { patterns: &["https://api.example.com"], target: "https://example.com/", allowed: false },
            // Any pattern of several.
            Case { patterns: &["http://a:1", "http://b:2"], target: "http://b:2/", allowed: true },
            // IPv6 literals.
            Case { patterns: &["http://[::1]:8080"], target: "http://[::1]:8080/", allowed: true },
            Case { patterns: &["http://[::1]:8080"], target: "http://[::1]:8081/", allowed: false },
        ];
        for case in cases {
            let patterns: Vec<String> = case.patterns.iter().map(|p| p.to_string()).collect();
            let allowed = AllowedHosts::parse(&patterns).unwrap();
            let uri: Uri = case.target.parse().unwrap();
            assert_eq!(allowed.allows(&uri), case.allowed, "{:?} -> {}", case.patterns, case.target);
        }
    }

    #[test]
    fn malformed_patterns_are_refused_with_the_reason() {
        for (pattern, reason) in [
            ("example.com", "expected scheme://host"),
            ("ftp://example.com", "scheme must be"),
            ("http://example.com/path", "a path is not allowed"),
            ("http://ex*ample.com:80", "leading label"),
            ("http://example.com:eighty", "port must be"),
            ("http://:80", "host is empty"),
        ] {
            let err = AllowedHosts::parse(&[pattern.to_owned()]).unwrap_err();
            assert!(err.contains(reason), "{pattern}: {err}");
            assert!(err.contains(pattern), "{err}");
        }
    }

    #[test]
    fn a_uri_without_scheme_or_host_is_never_allowed() {
        let all = AllowedHosts::parse(&["insecure:allow-all".to_owned()]).unwrap();
        assert!(!all.allows(&"/relative".parse().unwrap()));
    }
}
