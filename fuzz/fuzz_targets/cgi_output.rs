//! A guest's stdout (CGI) -> `parse_output`: never panics, and what it accepts is a response the
//! server can send as is: the body is byte-exact (a suffix of stdout), no framing header survives,
//! and printing the parsed response back as CGI parses to the same response, without warnings.
#![no_main]

use bytes::Bytes;
use http::header;
use wasmpod_fuzz::fuzz_target;
use wasmpod_wagi::parse_output;

fuzz_target!(|stdout: &[u8]| {
    let Ok(response) = parse_output(Bytes::copy_from_slice(stdout)) else { return };
    assert!(stdout.ends_with(&response.body), "the body is not the end of stdout");
    for (name, _) in &response.headers {
        assert!(
            ![header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION].contains(name),
            "framing header {name} passed through"
        );
    }

    let mut printed = format!("status: {}\n", response.status.as_u16()).into_bytes();
    for (name, value) in &response.headers {
        printed.extend_from_slice(name.as_str().as_bytes());
        printed.extend_from_slice(b": ");
        printed.extend_from_slice(value.as_bytes());
        printed.push(b'\n');
    }
    printed.push(b'\n');
    printed.extend_from_slice(&response.body);
    let again = parse_output(Bytes::from(printed)).expect("a printed response parses");
    assert_eq!(again.status, response.status);
    assert_eq!(again.headers, response.headers);
    assert_eq!(again.body, response.body);
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
});
