//! Limits on what a module may cost to load, checked before it is compiled: a module is refused
//! with its size or function count against the limit, instead of holding a compile thread (and
//! the memory compiling takes) for minutes. Compile time grows with the number of functions more
//! than with bytes: 100,000 tiny functions are half a megabyte and took 50 s to compile in a debug
//! build, so both are limited.

use std::path::Path;

/// The largest module file loaded (`--max-module-size`), by default: far above what toolchains
/// produce for one function (the five Wasabi functions are 0.3-1.3 MB compiled), low enough that
/// a pod is never asked to read and compile hundreds of megabytes.
pub const DEFAULT_MAX_MODULE_BYTES: u64 = 64 << 20;

/// The most functions a module (or all core modules of a component) may define
/// (`--max-module-functions`), by default: room for interpreters and language runtimes compiled
/// to Wasm (tens of thousands), refusing the pathological.
pub const DEFAULT_MAX_MODULE_FUNCTIONS: u32 = 50_000;

/// What a module may cost to load (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleLimits {
    /// The largest module file, in bytes.
    pub max_bytes: u64,
    /// The most functions it may define.
    pub max_functions: u32,
}

impl Default for ModuleLimits {
    fn default() -> Self {
        ModuleLimits { max_bytes: DEFAULT_MAX_MODULE_BYTES, max_functions: DEFAULT_MAX_MODULE_FUNCTIONS }
    }
}

impl ModuleLimits {
    /// Refuses a file larger than the limit, from its metadata (before it is read).
    pub fn check_file(&self, path: &Path) -> Result<(), String> {
        match std::fs::metadata(path) {
            Ok(meta) if meta.len() > self.max_bytes => Err(format!(
                "the module is {} bytes, over the limit of {} bytes (--max-module-size)",
                meta.len(),
                self.max_bytes
            )),
            _ => Ok(()),
        }
    }

    /// Refuses bytes that define more functions than the limit. Only the sections' headers are
    /// read (a function section states its count), so this costs microseconds; bytes that do not
    /// parse are left for the compiler, which names what is wrong.
    pub fn check_bytes(&self, bytes: &[u8]) -> Result<(), String> {
        // WAT text (served and uploaded as readily as binary) is counted in its binary form.
        let text_as_binary;
        let bytes = if bytes.starts_with(b"\0asm") {
            bytes
        } else {
            match wat::parse_bytes(bytes) {
                Ok(binary) => {
                    text_as_binary = binary;
                    &text_as_binary[..]
                }
                Err(_) => return Ok(()),
            }
        };
        let mut functions: u64 = 0;
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            match payload {
                Ok(wasmparser::Payload::FunctionSection(section)) => functions += u64::from(section.count()),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if functions > u64::from(self.max_functions) {
            return Err(format!(
                "the module defines {functions} functions, over the limit of {} (--max-module-functions)",
                self.max_functions
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module_with(functions: usize) -> Vec<u8> {
        let body = "(func)".repeat(functions);
        wat::parse_str(format!("(module {body})")).unwrap()
    }

    #[test]
    fn functions_are_counted_against_the_limit() {
        let limits = ModuleLimits { max_functions: 10, ..ModuleLimits::default() };
        assert_eq!(limits.check_bytes(&module_with(10)), Ok(()));
        let refused = limits.check_bytes(&module_with(11)).unwrap_err();
        assert!(refused.contains("defines 11 functions, over the limit of 10"), "{refused}");
    }

    /// WAT text is held to the same limit as the binary it stands for.
    #[test]
    fn wat_text_is_counted_too() {
        let limits = ModuleLimits { max_functions: 2, ..ModuleLimits::default() };
        let refused = limits.check_bytes(b"(module (func) (func) (func))").unwrap_err();
        assert!(refused.contains("defines 3 functions"), "{refused}");
    }

    /// A component's core modules count together: splitting code across them does not escape.
    #[test]
    fn a_components_core_modules_count_together() {
        let inner = "(core module (func) (func) (func))";
        let component = wat::parse_str(format!("(component {inner} {inner})")).unwrap();
        let limits = ModuleLimits { max_functions: 5, ..ModuleLimits::default() };
        let refused = limits.check_bytes(&component).unwrap_err();
        assert!(refused.contains("defines 6 functions"), "{refused}");
    }

    #[test]
    fn a_file_over_the_size_limit_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.wasm");
        std::fs::write(&path, vec![0u8; 2048]).unwrap();
        let limits = ModuleLimits { max_bytes: 1024, ..ModuleLimits::default() };
        let refused = limits.check_file(&path).unwrap_err();
        assert!(refused.contains("2048 bytes, over the limit of 1024 bytes"), "{refused}");
        assert_eq!(ModuleLimits { max_bytes: 2048, ..limits }.check_file(&path), Ok(()));
    }

    /// Bytes that do not parse pass this check: the compiler's error names the problem better.
    #[test]
    fn garbage_is_left_to_the_compiler() {
        assert_eq!(ModuleLimits::default().check_bytes(b"\0asm\x01\0\0\0garbage"), Ok(()));
    }
}
