//! What a guest's stdout becomes: a header block, a blank line, and the body.

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, StatusCode};
use thiserror::Error;

/// WAGI's body for a response that names neither a content type, a status nor a location.
pub const MISSING_HEADERS_MESSAGE: &str = "Exactly one of 'location' or 'content-type' must be specified";

/// The largest header block a guest may print (everything before the blank line): 64 KiB, as
/// common proxies accept. A larger block answers 500 instead of being passed on, so a client is
/// never sent a header block it would refuse half way through.
pub const MAX_HEADER_BLOCK_BYTES: usize = 64 << 10;

/// The HTTP response a guest asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct CgiResponse {
    /// From `Status`, else 302 for a `Location`, else 200.
    pub status: StatusCode,
    /// The headers to send, in the guest's order (framing headers dropped).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Byte-exact: everything after the blank line, CRs and all (a slice of stdout, not a copy).
    pub body: Bytes,
    /// Header lines that were dropped, for the log.
    pub warnings: Vec<String>,
}

/// Why stdout cannot become a response (each answers 500, with the reason in the log).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum OutputError {
    /// The bytes before the blank line cannot be read as text.
    #[error("the header block is not UTF-8")]
    HeadersNotUtf8,
    /// The bytes before the blank line are more than [`MAX_HEADER_BLOCK_BYTES`].
    #[error("the header block is {0} bytes, more than the limit of {MAX_HEADER_BLOCK_BYTES}")]
    HeadersTooLarge(usize),
    /// WAGI requires one of them; the answer carries [`MISSING_HEADERS_MESSAGE`].
    #[error("the output names no content-type, status or location")]
    MissingHeaders,
}

/// Parses a guest's stdout as WAGI does.
///
/// The header block ends at the first blank line; CRs are dropped inside it (so CRLF output
/// works) and nowhere else. `Status` sets the code (an invalid one gives 502 and the rest of the
/// response is kept), `Location` alone gives 302, `Content-Type` is copied; one of the three must
/// be present. Other headers are copied when their name and value are valid HTTP.
///
/// Deliberate deviations from WAGI 0.8.1, where it is random or breaks the response:
/// `Status` always beats `Location`'s 302 (WAGI picks at random); every `Set-Cookie` is kept
/// (WAGI keeps one); a guest's `Content-Length`, `Transfer-Encoding` and `Connection` are dropped
/// because the server frames the body itself (WAGI passed `Content-Length` on and the body was
/// truncated to it).
pub fn parse_output(stdout: Bytes) -> Result<CgiResponse, OutputError> {
    let Some((header_end, body_start)) = find_blank_line(&stdout) else {
        return Err(OutputError::MissingHeaders);
    };
    if header_end > MAX_HEADER_BLOCK_BYTES {
        return Err(OutputError::HeadersTooLarge(header_end));
    }
    // The header block without its CRs; borrowed as is when it has none (the common case).
    let raw = &stdout[..header_end];
    let block: std::borrow::Cow<'_, str> = if raw.contains(&b'\r') {
        let stripped: Vec<u8> = raw.iter().copied().filter(|&b| b != b'\r').collect();
        String::from_utf8(stripped).map_err(|_| OutputError::HeadersNotUtf8)?.into()
    } else {
        std::str::from_utf8(raw).map_err(|_| OutputError::HeadersNotUtf8)?.into()
    };
    let body = stdout.slice(body_start..);

    let mut response =
        CgiResponse { status: StatusCode::OK, headers: Vec::new(), body, warnings: Vec::new() };
    let mut sufficient = false;
    let mut status: Option<StatusCode> = None;
    let mut location = false;

    for line in block.trim().split('\n') {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        let is = |known: &str| name.eq_ignore_ascii_case(known);
        if is("status") {
            sufficient = true;
            let code = value.split(' ').next().unwrap_or("");
            status = Some(match code.parse::<u16>().ok().and_then(|c| StatusCode::from_u16(c).ok()) {
                Some(code) => code,
                None => {
                    response.warnings.push(format!("invalid status {value:?}: answering 502"));
                    StatusCode::BAD_GATEWAY
                }
            });
            continue;
        } else if is("content-type") {
            sufficient = true;
        } else if is("location") {
            sufficient = true;
            location = true;
        } else if is("content-length") || is("transfer-encoding") || is("connection") {
            response.warnings.push(format!("dropped header {name:?}: the server frames the body"));
            continue;
        }
        let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
            response.warnings.push(format!("dropped header with invalid name {name:?}"));
            continue;
        };
        let Ok(header_value) = HeaderValue::from_str(value) else {
            response.warnings.push(format!("dropped header {name:?} with invalid value {value:?}"));
            continue;
        };
        // WAGI keeps one value per name (the last); Set-Cookie is the exception a browser needs.
        if header_name != header::SET_COOKIE {
            response.headers.retain(|(n, _)| *n != header_name);
        }
        response.headers.push((header_name, header_value));
    }

    if !sufficient {
        return Err(OutputError::MissingHeaders);
    }
    response.status = match (status, location) {
        (Some(status), _) => status,
        (None, true) => StatusCode::FOUND,
        (None, false) => StatusCode::OK,
    };
    Ok(response)
}

/// Finds the first blank line, ignoring CRs: returns where the header block ends and where the
/// body starts.
fn find_blank_line(stdout: &[u8]) -> Option<(usize, usize)> {
    let mut line_start_newline: Option<usize> = None;
    for (i, &b) in stdout.iter().enumerate() {
        match b {
            b'\r' => {}
            b'\n' => match line_start_newline {
                Some(first) => return Some((first, i + 1)),
                None => line_start_newline = Some(i),
            },
            _ => line_start_newline = None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(out: &[u8]) -> Result<CgiResponse, OutputError> {
        parse_output(Bytes::copy_from_slice(out))
    }

    fn header<'r>(r: &'r CgiResponse, name: &str) -> Vec<&'r str> {
        r.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.to_str().unwrap()).collect()
    }

    #[test]
    fn output_cases() {
        struct Case {
            out: &'static [u8],
            status: u16,
            body: &'static [u8],
            content_type: Option<&'static str>,
        }
        let cases = [
            Case {
                out: b"content-type: text/plain\n\nhello\n",
                status: 200,
                body: b"hello\n",
                content_type: Some("text/plain"),
            },
            Case {
                out: b"Content-Type: text/plain\r\nX-A: 1\r\n\r\nline1\r\nline2\r\n",
                status: 200,
                body: b"line1\r\nline2\r\n",
                content_type: Some("text/plain"),
            },
            Case {
                out: b"content-type: text/plain\nstatus: 404\n\nNot Found\n",
                status: 404,
                body: b"Not Found\n",
                content_type: Some("text/plain"),
            },
            Case { out: b"status: 201 Created\n\n", status: 201, body: b"", content_type: None },
            Case { out: b"location: /elsewhere\n\n", status: 302, body: b"", content_type: None },
            Case {
                out: b"location: /elsewhere\nstatus: 301\n\n",
                status: 301,
                body: b"",
                content_type: None,
            },
            Case {
                out: b"status: 301\nlocation: /elsewhere\n\n",
                status: 301,
                body: b"",
                content_type: None,
            },
            Case {
                out: b"content-type: text/plain\nstatus: abc\n\nkept",
                status: 502,
                body: b"kept",
                content_type: Some("text/plain"),
            },
            Case { out: b"status: 1000\n\n", status: 502, body: b"", content_type: None },
            Case { out: b"status: 99\n\n", status: 502, body: b"", content_type: None },
            Case {
                out: b"content-type: text/plain\n\n\n\nbody with blank lines\n\n",
                status: 200,
                body: b"\n\nbody with blank lines\n\n",
                content_type: Some("text/plain"),
            },
            Case {
                out: b"content-type:text/plain\nno colon line\n\nx",
                status: 200,
                body: b"x",
                content_type: Some("text/plain"),
            },
            Case {
                out: b"content-type: text/plain\n\n\xff\xfe binary",
                status: 200,
                body: b"\xff\xfe binary",
                content_type: Some("text/plain"),
            },
            Case { out: b"CONTENT-TYPE: a/b\n\n", status: 200, body: b"", content_type: Some("a/b") },
            Case {
                out: b"content-type: text/plain\n\r\nbody",
                status: 200,
                body: b"body",
                content_type: Some("text/plain"),
            },
        ];
        for case in cases {
            let r =
                parse(case.out).unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(case.out)));
            assert_eq!(r.status.as_u16(), case.status, "{:?}", String::from_utf8_lossy(case.out));
            assert_eq!(&r.body[..], case.body, "{:?}", String::from_utf8_lossy(case.out));
            assert_eq!(header(&r, "content-type").first().copied(), case.content_type);
        }
    }

    #[test]
    fn missing_required_headers_is_an_error() {
        for out in [&b"just a body"[..], b"x-other: 1\n\nbody", b"", b"\n\nbody", b"content-type: a/b"] {
            assert_eq!(parse(out), Err(OutputError::MissingHeaders), "{:?}", String::from_utf8_lossy(out));
        }
    }

    #[test]
    fn header_block_must_be_utf8() {
        assert_eq!(parse(b"content-type: \xff\n\nx"), Err(OutputError::HeadersNotUtf8));
    }

    #[test]
    fn a_header_block_over_the_limit_is_an_error() {
        let mut out = b"content-type: text/plain\nx-big: ".to_vec();
        out.resize(MAX_HEADER_BLOCK_BYTES + 1, b'a');
        out.extend_from_slice(b"\n\nbody");
        assert_eq!(parse(&out), Err(OutputError::HeadersTooLarge(MAX_HEADER_BLOCK_BYTES + 1)));
        out.drain(40..42);
        assert_eq!(parse(&out).unwrap().body, "body");
    }

    #[test]
    fn invalid_header_names_are_dropped_with_a_warning() {
        let r = parse(b"content-type: text/plain\nbad header: x\nx-good: 1\n\nbody\n").unwrap();
        assert_eq!(header(&r, "x-good"), ["1"]);
        assert_eq!(r.headers.len(), 2);
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains("bad header"));
    }

    #[test]
    fn every_set_cookie_is_kept_other_repeats_keep_the_last() {
        let r = parse(b"content-type: a/b\nset-cookie: a=1\nset-cookie: b=2\nx-r: 1\nx-r: 2\n\n").unwrap();
        assert_eq!(header(&r, "set-cookie"), ["a=1", "b=2"]);
        assert_eq!(header(&r, "x-r"), ["2"]);
    }

    #[test]
    fn guest_framing_headers_are_dropped() {
        let r = parse(b"content-type: a/b\ncontent-length: 2\ntransfer-encoding: chunked\n\nlonger body")
            .unwrap();
        assert!(header(&r, "content-length").is_empty());
        assert!(header(&r, "transfer-encoding").is_empty());
        assert_eq!(&r.body[..], b"longer body");
        assert_eq!(r.warnings.len(), 2);
    }

    #[test]
    fn invalid_content_type_value_is_dropped_but_counts() {
        let r = parse(b"content-type: a\x01b\n\nx").unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert!(header(&r, "content-type").is_empty());
        assert_eq!(r.warnings.len(), 1);
    }

    #[test]
    fn location_header_is_sent() {
        let r = parse(b"location: /elsewhere\n\n").unwrap();
        assert_eq!(header(&r, "location"), ["/elsewhere"]);
    }
}
