//! What a request becomes for the guest: the CGI 1.1 environment and argv.

use std::borrow::Cow;
use std::net::IpAddr;

use http::{HeaderMap, Method, Uri, Version};
use percent_encoding::percent_decode_str;

use crate::{Error, RoutePattern};

/// WAGI's default for `--default-host` (`--hostname`): used for `SERVER_NAME`/`SERVER_PORT` when
/// the request carries no `Host` header.
pub const DEFAULT_HOST: &str = "localhost:3000";

/// The parts of an HTTP request that the CGI environment is made of.
#[derive(Debug, Clone, Copy)]
pub struct CgiRequest<'a> {
    /// `REQUEST_METHOD`.
    pub method: &'a Method,
    /// The request target as received: path and query (`X_FULL_URL`, `QUERY_STRING`, ...).
    pub uri: &'a Uri,
    /// `SERVER_PROTOCOL`.
    pub version: Version,
    /// Each becomes `HTTP_<NAME>` (except `Authorization` and `Connection`).
    pub headers: &'a HeaderMap,
    /// `CONTENT_LENGTH`: the length of the body the guest reads on stdin.
    pub body_len: usize,
    /// `REMOTE_ADDR` and `REMOTE_HOST`.
    pub remote_addr: IpAddr,
    /// The route that matched (its text is `X_MATCHED_ROUTE`, its base decides `PATH_INFO`).
    pub route: &'a RoutePattern,
    /// `--default-host`: `host` or `host:port`.
    pub default_host: &'a str,
}

/// A guest's environment: `(name, value)` pairs in the order the guest sees them. Names are
/// `Cow` because the CGI ones are constants and a request should not allocate them.
pub type CgiEnv = Vec<(Cow<'static, str>, String)>;

/// Builds the guest's environment: the user's `--env`/`--env-file` values, then the CGI variables,
/// then one `HTTP_*` per request header, each later group overriding the earlier one by name
/// (WAGI's order, so `-e REQUEST_METHOD=x` has no effect). The guest sees nothing else.
///
/// Deliberate deviation: `CONTENT_TYPE` carries the request's `Content-Type` (CGI 1.1 requires it;
/// WAGI always sends ""), and `HTTP_CONTENT_TYPE` stays as well.
pub fn build_env(req: &CgiRequest<'_>, user_env: &[(String, String)]) -> CgiEnv {
    let mut env: CgiEnv = Vec::with_capacity(24 + req.headers.len() + user_env.len());
    // The CGI names are constants: borrowed, not allocated, on every request.
    let mut set = |name: &'static str, value: String| env.push((Cow::Borrowed(name), value));

    let path = req.uri.path();
    let raw_path_info = req.route.raw_path_info(path);
    let path_info = percent_decode_str(raw_path_info).decode_utf8_lossy().into_owned();
    let (server_name, server_port) = server_name_and_port(req);
    let query = req.uri.query();
    // wasmpod serves plain HTTP (TLS ends in front of it: Knative's ingress, a proxy), as WAGI
    // does without its TLS flags.
    let full_url = match query {
        Some(q) => format!("http://{server_name}:{server_port}{path}?{q}"),
        None => format!("http://{server_name}:{server_port}{path}"),
    };
    let content_type =
        req.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();

    set("AUTH_TYPE", String::new());
    set("CONTENT_LENGTH", req.body_len.to_string());
    set("CONTENT_TYPE", content_type);
    set("GATEWAY_INTERFACE", "CGI/1.1".to_owned());
    set("PATH_TRANSLATED", path_info.clone());
    set("PATH_INFO", path_info);
    set("X_RAW_PATH_INFO", raw_path_info.to_owned());
    set("QUERY_STRING", query.unwrap_or("").to_owned());
    let remote = req.remote_addr.to_string();
    set("REMOTE_HOST", remote.clone());
    set("REMOTE_ADDR", remote);
    set("REMOTE_USER", String::new());
    set("REQUEST_METHOD", req.method.as_str().to_owned());
    set("SCRIPT_NAME", req.route.script_name().to_owned());
    set("SERVER_NAME", server_name);
    set("SERVER_PORT", server_port);
    set("SERVER_PROTOCOL", protocol(req.version).to_owned());
    set("SERVER_SOFTWARE", "WAGI/1".to_owned());
    set("X_MATCHED_ROUTE", req.route.text());
    set("X_FULL_URL", full_url);

    let cgi_len = env.len();
    for (name, value) in req.headers {
        if name == http::header::AUTHORIZATION || name == http::header::CONNECTION {
            continue;
        }
        let var = header_var_name(name.as_str());
        // WAGI replaces characters it cannot pass on rather than dropping the header.
        let value = value.to_str().unwrap_or("CORRUPT VALUE").to_owned();
        // Repeated headers: the last value wins, as in WAGI.
        match env[cgi_len..].iter_mut().find(|(n, _)| *n == var) {
            Some(existing) => existing.1 = value,
            None => env.push((Cow::Owned(var), value)),
        }
    }
    for (name, value) in user_env {
        if !env.iter().any(|(n, _)| n == name) {
            env.push((Cow::Owned(name.clone()), value.clone()));
        }
    }
    env
}

/// `SERVER_PROTOCOL`, as WAGI printed it (`http::Version`'s `Debug`), without formatting.
fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// `SERVER_NAME`/`SERVER_PORT`: the URI authority (else `localhost`/`80`), overridden by the
/// default host (its port only if it names one), overridden by the `Host` header (likewise).
fn server_name_and_port(req: &CgiRequest<'_>) -> (String, String) {
    let mut name = req.uri.host().unwrap_or("localhost").to_owned();
    let mut port = req.uri.port_u16().map_or_else(|| "80".to_owned(), |p| p.to_string());
    let mut apply = |authority: &str| match authority.split_once(':') {
        Some((h, p)) => {
            name = h.to_owned();
            port = p.to_owned();
        }
        None => name = authority.to_owned(),
    };
    apply(req.default_host);
    if let Some(host) = req.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()) {
        apply(host);
    }
    (name, port)
}

fn header_var_name(header: &str) -> String {
    let mut var = String::with_capacity(5 + header.len());
    var.push_str("HTTP_");
    var.extend(header.chars().map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() }));
    var
}

/// The guest's argv. Without a template: `[raw path, query items split on '&']` (not decoded; a
/// bare `?` gives one empty item). With the route's `argv` template: `${SCRIPT_NAME}` becomes the
/// raw request path and `${ARGS}` the query with `&` turned into spaces, then the result is split
/// on whitespace (WAGI's rules, including its use of the full path for `${SCRIPT_NAME}`).
pub fn build_argv(path: &str, query: Option<&str>, template: Option<&str>) -> Vec<String> {
    match template {
        None => {
            let mut argv = vec![path.to_owned()];
            if let Some(q) = query {
                argv.extend(q.split('&').map(str::to_owned));
            }
            argv
        }
        Some(template) => {
            let args = query.unwrap_or("").replace('&', " ");
            template
                .replace("${SCRIPT_NAME}", path)
                .replace("${ARGS}", &args)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        }
    }
}

/// Parses one `--env NAME=VALUE`. A value wrapped in double or single quotes loses all its leading
/// and trailing quote characters (WAGI's rule); an empty name or a missing `=` is an error.
pub fn parse_env_flag(text: &str) -> Result<(String, String), Error> {
    let invalid = || Error::InvalidEnvVar { text: text.to_owned() };
    let (name, value) = text.split_once('=').ok_or_else(invalid)?;
    if name.is_empty() {
        return Err(invalid());
    }
    let value = ['"', '\'']
        .into_iter()
        .find(|&q| value.len() >= 2 && value.starts_with(q) && value.ends_with(q))
        .map_or(value, |q| value.trim_matches(q));
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    struct Request {
        method: Method,
        uri: Uri,
        version: Version,
        headers: HeaderMap,
        route: RoutePattern,
        default_host: &'static str,
    }

    fn request(route: &str, uri: &str, headers: &[(&'static str, &'static str)]) -> Request {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_static(value));
        }
        Request {
            method: Method::GET,
            uri: uri.parse().unwrap(),
            version: Version::HTTP_11,
            headers: map,
            route: RoutePattern::parse(route),
            default_host: DEFAULT_HOST,
        }
    }

    #[test]
    fn server_protocol_is_what_wagi_printed() {
        for version in
            [Version::HTTP_09, Version::HTTP_10, Version::HTTP_11, Version::HTTP_2, Version::HTTP_3]
        {
            assert_eq!(protocol(version), format!("{version:?}"));
        }
    }

    fn env_of(r: &Request, user: &[(&str, &str)]) -> CgiEnv {
        let user: Vec<(String, String)> = user.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let req = CgiRequest {
            method: &r.method,
            uri: &r.uri,
            version: r.version,
            headers: &r.headers,
            body_len: 5,
            remote_addr: "127.0.0.1".parse().unwrap(),
            route: &r.route,
            default_host: r.default_host,
        };
        build_env(&req, &user)
    }

    fn get<'e>(env: &'e [(Cow<'static, str>, String)], name: &str) -> Option<&'e str> {
        let mut found = env.iter().filter(|(n, _)| n == name);
        let first = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "{name} appears twice");
        first
    }

    #[test]
    fn cgi_variables_follow_wagi_rules() {
        let r = request(
            "/probe/...",
            "/probe/a%20b/c%3Bd?x=1&y=two%20words",
            &[("host", "example.com:8080"), ("content-type", "application/json"), ("x-custom-thing", "yes")],
        );
        let env = env_of(&r, &[]);
        let expected = [
            ("AUTH_TYPE", ""),
            ("CONTENT_LENGTH", "5"),
            ("CONTENT_TYPE", "application/json"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("PATH_INFO", "/a b/c;d"),
            ("PATH_TRANSLATED", "/a b/c;d"),
            ("X_RAW_PATH_INFO", "/a%20b/c%3Bd"),
            ("QUERY_STRING", "x=1&y=two%20words"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("REMOTE_HOST", "127.0.0.1"),
            ("REMOTE_USER", ""),
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_NAME", "/probe"),
            ("SERVER_NAME", "example.com"),
            ("SERVER_PORT", "8080"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_SOFTWARE", "WAGI/1"),
            ("X_MATCHED_ROUTE", "/probe/..."),
            ("X_FULL_URL", "http://example.com:8080/probe/a%20b/c%3Bd?x=1&y=two%20words"),
            ("HTTP_HOST", "example.com:8080"),
            ("HTTP_CONTENT_TYPE", "application/json"),
            ("HTTP_X_CUSTOM_THING", "yes"),
        ];
        for (name, value) in expected {
            assert_eq!(get(&env, name), Some(value), "{name}");
        }
        assert_eq!(env.len(), expected.len());
    }

    #[test]
    fn plus_stays_plus_in_path_info() {
        let env = env_of(&request("/...", "/a+b%2Bc", &[]), &[]);
        assert_eq!(get(&env, "PATH_INFO"), Some("/a+b+c"));
    }

    #[test]
    fn server_name_and_port_resolution() {
        struct Case {
            uri: &'static str,
            host: Option<&'static str>,
            default_host: &'static str,
            name: &'static str,
            port: &'static str,
        }
        let cases = [
            Case { uri: "/x", host: None, default_host: "localhost:3000", name: "localhost", port: "3000" },
            Case {
                uri: "/x",
                host: Some("example.com"),
                default_host: "localhost:3000",
                name: "example.com",
                port: "3000",
            },
            Case {
                uri: "/x",
                host: Some("example.com:81"),
                default_host: "localhost:3000",
                name: "example.com",
                port: "81",
            },
            Case {
                uri: "/x",
                host: None,
                default_host: "myhost.example",
                name: "myhost.example",
                port: "80",
            },
            Case { uri: "http://a.test:9/x", host: None, default_host: "b.test", name: "b.test", port: "9" },
        ];
        for case in cases {
            let headers: Vec<(&'static str, &'static str)> =
                case.host.map(|h| ("host", h)).into_iter().collect();
            let mut r = request("/x", case.uri, &headers);
            r.default_host = case.default_host;
            let env = env_of(&r, &[]);
            assert_eq!(get(&env, "SERVER_NAME"), Some(case.name), "{} {:?}", case.uri, case.host);
            assert_eq!(get(&env, "SERVER_PORT"), Some(case.port), "{} {:?}", case.uri, case.host);
        }
    }

    #[test]
    fn full_url_always_has_a_port_and_keeps_a_bare_question_mark() {
        let env = env_of(&request("/probe", "/probe?", &[("host", "127.0.0.1:3300")]), &[]);
        assert_eq!(get(&env, "X_FULL_URL"), Some("http://127.0.0.1:3300/probe?"));
        let env = env_of(&request("/probe", "/probe", &[]), &[]);
        assert_eq!(get(&env, "X_FULL_URL"), Some("http://localhost:3000/probe"));
    }

    #[test]
    fn authorization_and_connection_are_not_passed_and_last_repeated_header_wins() {
        let r = request(
            "/x",
            "/x",
            &[("authorization", "secret"), ("connection", "keep-alive"), ("x-rep", "one"), ("x-rep", "two")],
        );
        let env = env_of(&r, &[]);
        assert_eq!(get(&env, "HTTP_AUTHORIZATION"), None);
        assert_eq!(get(&env, "HTTP_CONNECTION"), None);
        assert_eq!(get(&env, "HTTP_X_REP"), Some("two"));
    }

    #[test]
    fn non_ascii_header_values_become_corrupt_value() {
        let mut r = request("/x", "/x", &[]);
        r.headers.insert("x-bin", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        assert_eq!(get(&env_of(&r, &[]), "HTTP_X_BIN"), Some("CORRUPT VALUE"));
    }

    #[test]
    fn user_env_is_overridden_by_cgi_and_headers() {
        let r = request("/x", "/x", &[("x-custom-thing", "fromheader")]);
        let env = env_of(
            &r,
            &[
                ("REQUEST_METHOD", "x"),
                ("HTTP_X_CUSTOM_THING", "fromcli"),
                ("HTTP_OTHER", "kept"),
                ("MINE", "1"),
            ],
        );
        assert_eq!(get(&env, "REQUEST_METHOD"), Some("GET"));
        assert_eq!(get(&env, "HTTP_X_CUSTOM_THING"), Some("fromheader"));
        assert_eq!(get(&env, "HTTP_OTHER"), Some("kept"));
        assert_eq!(get(&env, "MINE"), Some("1"));
    }

    #[test]
    fn argv_cases() {
        struct Case {
            path: &'static str,
            query: Option<&'static str>,
            template: Option<&'static str>,
            argv: &'static [&'static str],
        }
        let cases = [
            Case {
                path: "/probe/a%20b/c%3Bd",
                query: Some("x=1&y=two%20words&z"),
                template: None,
                argv: &["/probe/a%20b/c%3Bd", "x=1", "y=two%20words", "z"],
            },
            Case { path: "/probe", query: Some(""), template: None, argv: &["/probe", ""] },
            Case { path: "/probe", query: None, template: None, argv: &["/probe"] },
            Case {
                path: "/argv/sub",
                query: Some("a=1&b=2"),
                template: Some("ruby index.rb ${SCRIPT_NAME} ${ARGS}"),
                argv: &["ruby", "index.rb", "/argv/sub", "a=1", "b=2"],
            },
            Case { path: "/argv", query: None, template: Some("prog ${ARGS} end"), argv: &["prog", "end"] },
        ];
        for case in cases {
            assert_eq!(
                build_argv(case.path, case.query, case.template),
                case.argv,
                "{} {:?}",
                case.path,
                case.query
            );
        }
    }

    #[test]
    fn env_flag_cases() {
        let ok = parse_env_flag;
        assert_eq!(ok("A=1"), Ok(("A".into(), "1".into())));
        assert_eq!(ok("A="), Ok(("A".into(), "".into())));
        assert_eq!(ok("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(ok("A=\"quoted value\""), Ok(("A".into(), "quoted value".into())));
        assert_eq!(ok("A='single'"), Ok(("A".into(), "single".into())));
        assert_eq!(ok("A=\"\"x\"\""), Ok(("A".into(), "x".into())));
        assert_eq!(ok("A=\"unbalanced"), Ok(("A".into(), "\"unbalanced".into())));
        assert_eq!(ok("A=\""), Ok(("A".into(), "\"".into())));
        assert!(ok("=1").is_err());
        assert!(ok("NOEQUALS").is_err());
    }
}
