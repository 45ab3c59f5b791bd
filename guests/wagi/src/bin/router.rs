//! Dynamic routes: `_routes` declares `/one` -> `one` and `/two/...` -> `two`, and two pairs of
//! overlapping routes in opposite orders (`/wide/exact` before `/wide/...`, `/narrow/...` before
//! `/narrow/deep`): the route printed last wins where they overlap, whichever is more specific.
//! The extra exports are made visible by `--export` linker args in `build.rs`.

use std::io::Write;

fn emit(s: &str) {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(s.as_bytes()).unwrap();
    stdout.flush().unwrap();
}

#[no_mangle]
pub extern "C" fn _routes() {
    emit("/one one\n/two/... two\n/wide/exact one\n/wide/... two\n/narrow/... two\n/narrow/deep one\n");
}

#[no_mangle]
pub extern "C" fn one() {
    emit("content-type: text/plain\n\none\n");
}

#[no_mangle]
pub extern "C" fn two() {
    emit("content-type: text/plain\n\ntwo\n");
}

fn main() {
    emit("content-type: text/plain\n\nmain\n");
}
