//! The fuzz targets' one macro, two ways. With the `libfuzzer` feature (the default, what
//! `cargo fuzz` builds), [`fuzz_target!`] is libFuzzer's: coverage-guided runs on nightly. Without
//! it, it defines `pub fn check(bytes: &[u8])` in the target's module instead, so that
//! `tests/stable.rs` runs every target's properties on stable Rust over random inputs (no
//! coverage guidance, but no nightly toolchain or cargo-fuzz to install either: that is what CI
//! runs). A target's file is the same either way.

/// Declares a fuzz target: `fuzz_target!(|data: &[u8]| ...)` or `fuzz_target!(|input: T| ...)`
/// with `T: Arbitrary`, as libFuzzer's macro of the same name.
#[cfg(feature = "libfuzzer")]
#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident: &[u8]| $body:expr) => {
        $crate::libfuzzer_sys::fuzz_target!(|$data: &[u8]| $body);
    };
    (|$data:ident: $ty:ty| $body:expr) => {
        $crate::libfuzzer_sys::fuzz_target!(|$data: $ty| $body);
    };
}

/// Declares a fuzz target's `check` function (see the crate docs).
#[cfg(not(feature = "libfuzzer"))]
#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident: &[u8]| $body:expr) => {
        /// Checks the target's properties on one input.
        pub fn check(bytes: &[u8]) {
            let $data: &[u8] = bytes;
            $body;
        }
    };
    (|$data:ident: $ty:ty| $body:expr) => {
        /// Checks the target's properties on the input `bytes` decode to, if they decode.
        pub fn check(bytes: &[u8]) {
            let unstructured = $crate::arbitrary::Unstructured::new(bytes);
            if let Ok($data) = <$ty as $crate::arbitrary::Arbitrary>::arbitrary_take_rest(unstructured) {
                $body;
            }
        }
    };
}

pub use arbitrary;
#[cfg(feature = "libfuzzer")]
pub use libfuzzer_sys;
