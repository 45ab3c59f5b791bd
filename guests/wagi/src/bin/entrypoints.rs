//! Named entrypoints without `_routes`: `alpha`, `beta`, and the default `_start`.
//! The extra exports are made visible by `--export` linker args in `build.rs`.

use std::io::Write;

fn emit(s: &str) {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(s.as_bytes()).unwrap();
    stdout.flush().unwrap();
}

#[no_mangle]
pub extern "C" fn alpha() {
    emit("content-type: text/plain\n\nalpha\n");
}

#[no_mangle]
pub extern "C" fn beta() {
    emit("content-type: text/plain\n\nbeta\n");
}

fn main() {
    emit("content-type: text/plain\n\nmain\n");
}
