//! Prints argv (`ARG<i>=<value>`) then every environment variable sorted by key.

use std::io::Write;

fn main() {
    let mut out = String::from("content-type: text/plain\n\n");
    for (i, arg) in std::env::args_os().enumerate() {
        out.push_str(&format!("ARG{i}={}\n", arg.to_string_lossy()));
    }
    let mut vars: Vec<_> = std::env::vars_os().collect();
    vars.sort();
    for (k, v) in vars {
        out.push_str(&format!("{}={}\n", k.to_string_lossy(), v.to_string_lossy()));
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes()).unwrap();
    stdout.flush().unwrap();
}
