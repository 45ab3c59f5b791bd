//! The test and benchmark guests built from `guests/`: Rust WAGI functions compiled to
//! `wasm32-wasip1` and a `wasi:http` component compiled to `wasm32-wasip2` by this crate's build
//! script, the five Wasabi benchmark functions ([`wasabi`]), plus the WAT fixtures in `guests/wat`.
//! Tests and benches depend on it to get the paths of the `.wasm` files; the server itself
//! never does.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The five Wasabi benchmark functions (`guests/wasabi`): plain WASI programs for the `raw`
/// interface that read an optional size on stdin and print one line. `guests/README.md` gives
/// each one's work and parameter.
pub mod wasabi {
    include!(concat!(env!("OUT_DIR"), "/wasabi.rs"));
}

/// The path of the WAT fixture `name` (e.g. `"hello.wat"`) in `guests/wat`.
pub fn wat(name: &str) -> std::path::PathBuf {
    std::path::Path::new(WAT_DIR).join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECTED: &[&str] = &[
        HELLO,
        ENV,
        ECHO,
        RAW,
        ROUTER,
        ENTRYPOINTS,
        STDERR,
        VOLUME,
        TRAP,
        SPIN,
        HOG,
        EXIT,
        SLEEP,
        CPU,
        OUTBOUND,
        PATTERN,
        FILES,
    ];

    #[test]
    fn every_guest_is_a_wasm_module() {
        assert_eq!(ALL.len(), EXPECTED.len(), "{ALL:?}");
        for path in EXPECTED.iter().chain(ALL.iter().map(|(_, p)| p)) {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(bytes.starts_with(b"\0asm"), "{path} is not a wasm module");
        }
    }

    #[test]
    fn every_wasabi_function_is_a_wasm_module() {
        let expected =
            [wasabi::GENPDF, wasabi::IMAGEBLUR, wasabi::JSON_COMPRESSION, wasabi::RSA_KEYGEN, wasabi::SCRYPT];
        assert_eq!(wasabi::ALL.iter().map(|(_, p)| *p).collect::<Vec<_>>(), expected);
        for path in expected {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(bytes.starts_with(b"\0asm"), "{path} is not a wasm module");
            assert_eq!(&bytes[4..8], &[1, 0, 0, 0], "{path} is not a core module");
        }
    }

    #[test]
    fn the_http_guest_is_a_component() {
        let bytes = std::fs::read(HTTP_COMPONENT).unwrap();
        // The header's layer field: 0 for a core module, 1 for a component.
        assert_eq!(&bytes[..4], b"\0asm");
        assert_eq!(&bytes[6..8], &[1, 0], "{HTTP_COMPONENT} is not a component");
    }

    #[test]
    fn wat_fixtures_exist() {
        for name in [
            "hello.wat",
            "crlf.wat",
            "no_headers.wat",
            "bad_header_name.wat",
            "status_location.wat",
            "print_4mb.wat",
            "routes_spin.wat",
            "huge_header.wat",
            "bad_utf8_header.wat",
        ] {
            assert!(wat(name).is_file(), "{}", wat(name).display());
        }
    }
}
