//! `allowed_hosts` entries and outbound targets. Never panics, whatever the entries and URL; a
//! list allows exactly what its entries allow one by one (so adding an entry never takes a
//! permission away); `insecure:allow-all` allows every http(s) URL; and a generated
//! `scheme://host:port` entry allows that target and not its neighbours (another port, the other
//! scheme, another host).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use http::Uri;
use wasmpod_config::AllowedHosts;
use wasmpod_fuzz::fuzz_target;

#[derive(Debug)]
struct Exact {
    https: bool,
    host: String,
    port: u16,
}

impl<'a> Arbitrary<'a> for Exact {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        const LABELS: &[&str] = &["a", "b", "api", "example", "com", "x-y", "1"];
        let labels =
            (0..u.int_in_range(1..=3)?).map(|_| u.choose(LABELS).copied()).collect::<Result<Vec<_>, _>>()?;
        Ok(Exact { https: u.arbitrary()?, host: labels.join("."), port: u.int_in_range(1..=65534)? })
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    first: Vec<String>,
    second: Vec<String>,
    target: String,
    exact: Exact,
}

fuzz_target!(|input: Input| {
    let target: Option<Uri> = input.target.parse().ok();
    if let (Ok(first), Ok(second)) = (AllowedHosts::parse(&input.first), AllowedHosts::parse(&input.second)) {
        let both =
            AllowedHosts::parse(&[input.first.clone(), input.second.clone()].concat()).expect("both parse");
        if let Some(uri) = &target {
            assert_eq!(both.allows(uri), first.allows(uri) || second.allows(uri), "{uri}");
        }
    }
    let all = AllowedHosts::parse(&["insecure:allow-all".to_owned()]).expect("allow-all");
    if let Some(uri) = &target {
        let http = matches!(uri.scheme_str(), Some("http" | "https"));
        if http && uri.host().is_some_and(|h| !h.is_empty()) {
            assert!(all.allows(uri), "{uri}");
        }
    }

    let Exact { https, host, port } = &input.exact;
    let scheme = if *https { "https" } else { "http" };
    let other = if *https { "http" } else { "https" };
    let entry = AllowedHosts::parse(&[format!("{scheme}://{host}:{port}")]).expect("a well-formed entry");
    let allows = |url: String| entry.allows(&url.parse::<Uri>().expect("a well-formed URL"));
    assert!(allows(format!("{scheme}://{host}:{port}/path?q")));
    assert!(!allows(format!("{scheme}://{host}:{}/", port + 1)));
    assert!(!allows(format!("{other}://{host}:{port}/")));
    assert!(!allows(format!("{scheme}://z{host}:{port}/")));
});
