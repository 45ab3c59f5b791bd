//! WasmBox's contract for raw programs (`interface = "raw"`): what the guest reads on stdin, and
//! what the reply looks like, plain or byte-compatible with WasmBox (`--wasmbox-compat`). The
//! README's "WasmBox compatibility" lists where wasmpod differs.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderValue, Method, Response, StatusCode};

use crate::ResponseBody;

/// The guest's run time in whole milliseconds (instantiation and the call), on every raw reply.
pub const EXECUTION_TIME_HEADER: &str = "execution-time";
/// Guest requests in flight in the pod when the reply was made (this one included).
pub const NUM_CURRENT_REQUESTS_HEADER: &str = "num-current-requests";

/// What WasmBox answers, with status 500, when a run fails (the reason goes to the log only).
pub const WASMBOX_FAILURE_BODY: &str = "WASM output: Failed to run WASM module\n";
/// What WasmBox puts before a guest's output.
const WASMBOX_PREFIX: &[u8] = b"WASM output: ";

/// What a raw program reads on stdin: nothing for a GET; the string of a JSON body
/// `{"parameter": "<string>"}` (WasmBox's request); any other body as it is.
pub fn raw_stdin(method: &Method, body: Bytes) -> Bytes {
    if method == Method::GET {
        return Bytes::new();
    }
    json_parameter(&body).map_or(body, Bytes::from)
}

/// The `parameter` string of a JSON object, if `body` is one and has it. Other members are
/// ignored, as WasmBox's decoder ignores them.
fn json_parameter(body: &[u8]) -> Option<String> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let mut object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    match object.remove("parameter") {
        Some(serde_json::Value::String(parameter)) => Some(parameter),
        _ => None,
    }
}

/// How a raw reply is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawReply {
    /// `--wasmbox-compat`: WasmBox's bytes instead of wasmpod's.
    pub(crate) compat: bool,
    /// The guest's run time.
    pub(crate) execution: Duration,
    /// Guest requests in flight now.
    pub(crate) in_flight: usize,
}

impl RawReply {
    /// 200 with what the guest printed: as it is (`text/plain; charset=utf-8`), or WasmBox's
    /// `WASM output: <stdout without trailing NULs>\n` (`text/plain`).
    pub(crate) fn success(self, stdout: Bytes) -> Response<ResponseBody> {
        let body = if self.compat {
            let trimmed = stdout.iter().rposition(|&b| b != 0).map_or(&stdout[..0], |last| &stdout[..=last]);
            let mut body = BytesMut::with_capacity(WASMBOX_PREFIX.len() + trimmed.len() + 1);
            body.put_slice(WASMBOX_PREFIX);
            body.put_slice(trimmed);
            body.put_u8(b'\n');
            body.freeze()
        } else {
            stdout
        };
        self.response(StatusCode::OK, body)
    }

    /// A failed run: `status` with an empty body, or WasmBox's 500 and its fixed message.
    pub(crate) fn failure(self, status: StatusCode) -> Response<ResponseBody> {
        if self.compat {
            self.response(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from_static(WASMBOX_FAILURE_BODY.as_bytes()),
            )
        } else {
            let mut response = self.response(status, Bytes::new());
            response.headers_mut().remove(header::CONTENT_TYPE);
            response
        }
    }

    fn response(self, status: StatusCode, body: Bytes) -> Response<ResponseBody> {
        let mut response = Response::new(ResponseBody::full(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        let content_type = if self.compat { "text/plain" } else { "text/plain; charset=utf-8" };
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        // Whole milliseconds, truncated, as WasmBox writes them.
        headers.insert(EXECUTION_TIME_HEADER, HeaderValue::from(self.execution.as_millis() as u64));
        headers.insert(NUM_CURRENT_REQUESTS_HEADER, HeaderValue::from(self.in_flight));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn stdin_is_the_body_the_json_parameter_or_nothing_for_a_get() {
        struct Case {
            method: Method,
            body: &'static str,
            stdin: &'static str,
        }
        let cases = [
            Case { method: Method::POST, body: r#"{"parameter": "hello"}"#, stdin: "hello" },
            Case { method: Method::POST, body: " \n{\"parameter\":\"a\\nb\",\"other\":1}", stdin: "a\nb" },
            Case { method: Method::POST, body: r#"{"parameter": ""}"#, stdin: "" },
            Case { method: Method::POST, body: r#"{"parameter": 7}"#, stdin: r#"{"parameter": 7}"# },
            Case { method: Method::POST, body: r#"{"param": "x"}"#, stdin: r#"{"param": "x"}"# },
            Case {
                method: Method::POST,
                body: r#"{"parameter": "unterminated"#,
                stdin: r#"{"parameter": "unterminated"#,
            },
            Case { method: Method::POST, body: r#"["parameter"]"#, stdin: r#"["parameter"]"# },
            Case { method: Method::POST, body: "plain text", stdin: "plain text" },
            Case { method: Method::PUT, body: r#"{"parameter": "put"}"#, stdin: "put" },
            Case { method: Method::GET, body: r#"{"parameter": "ignored"}"#, stdin: "" },
            Case { method: Method::GET, body: "", stdin: "" },
        ];
        for case in cases {
            let stdin = raw_stdin(&case.method, Bytes::from_static(case.body.as_bytes()));
            assert_eq!(stdin, case.stdin, "{} {:?}", case.method, case.body);
        }
    }

    async fn parts(response: Response<ResponseBody>) -> (u16, Vec<(String, String)>, Bytes) {
        let status = response.status().as_u16();
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        (status, headers, response.into_body().collect().await.unwrap().to_bytes())
    }

    fn headers(content_type: &str) -> Vec<(String, String)> {
        [("content-type", content_type), ("execution-time", "12"), ("num-current-requests", "3")]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .to_vec()
    }

    #[tokio::test]
    async fn replies_plain_and_wasmbox_compatible() {
        let reply = RawReply { compat: false, execution: Duration::from_micros(12_900), in_flight: 3 };
        let compat = RawReply { compat: true, ..reply };
        let stdout = Bytes::from_static(b"result\0\0");
        assert_eq!(
            parts(reply.success(stdout.clone())).await,
            (200, headers("text/plain; charset=utf-8"), stdout.clone())
        );
        assert_eq!(
            parts(compat.success(stdout)).await,
            (200, headers("text/plain"), Bytes::from_static(b"WASM output: result\n"))
        );
        assert_eq!(
            parts(compat.success(Bytes::from_static(b"\0"))).await,
            (200, headers("text/plain"), Bytes::from_static(b"WASM output: \n"))
        );
        let mut plain_failure = headers("");
        plain_failure.remove(0);
        assert_eq!(
            parts(reply.failure(StatusCode::GATEWAY_TIMEOUT)).await,
            (504, plain_failure, Bytes::new())
        );
        assert_eq!(
            parts(compat.failure(StatusCode::GATEWAY_TIMEOUT)).await,
            (500, headers("text/plain"), Bytes::from_static(WASMBOX_FAILURE_BODY.as_bytes()))
        );
    }
}
