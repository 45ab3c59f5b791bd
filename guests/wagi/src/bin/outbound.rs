//! Outbound HTTP through WAGI's `wasi_experimental_http` host module, called directly through its
//! raw ABI (what the `wasi-experimental-http` guest crate wraps).
//!
//! Query: `url=<target>` (required), `n=<k>` to open `k` responses at once before closing any
//! (for `http_max_concurrency`), `leak=1` to never close them (the host must not carry them over
//! to the next request). Prints, as `text/plain`: `status <code>`, the `content-type`
//! from `header_get`, the header count from `headers_get_all`, then the body; or `error <code>`
//! (WAGI's error numbers) for the first call that fails.

use std::io::Write;

#[link(wasm_import_module = "wasi_experimental_http")]
extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn req(
        url: *const u8,
        url_len: usize,
        method: *const u8,
        method_len: usize,
        headers: *const u8,
        headers_len: usize,
        body: *const u8,
        body_len: usize,
        status: *mut u16,
        handle: *mut u32,
    ) -> u32;
    fn close(handle: u32) -> u32;
    fn header_get(
        handle: u32,
        name: *const u8,
        name_len: usize,
        value: *mut u8,
        value_len: usize,
        written: *mut usize,
    ) -> u32;
    fn headers_get_all(handle: u32, buf: *mut u8, buf_len: usize, written: *mut usize) -> u32;
    fn body_read(handle: u32, buf: *mut u8, buf_len: usize, written: *mut usize) -> u32;
}

fn main() {
    let url: String = wagi_guests::query_param("url").unwrap_or_default();
    let opened: usize = wagi_guests::query_param("n").unwrap_or(1);
    let leak = wagi_guests::query_param::<u8>("leak") == Some(1);
    let mut out = std::io::stdout().lock();
    out.write_all(b"content-type: text/plain\n\n").unwrap();
    match fetch(&url, opened, leak) {
        Ok(text) => out.write_all(text.as_bytes()).unwrap(),
        Err(code) => writeln!(out, "error {code}").unwrap(),
    }
}

fn check(code: u32) -> Result<(), u32> {
    if code == 0 {
        Ok(())
    } else {
        Err(code)
    }
}

fn fetch(url: &str, opened: usize, leak: bool) -> Result<String, u32> {
    let method = "POST";
    let headers = "x-from:outbound\n";
    let body = "ping";
    let mut handles = Vec::new();
    let mut status = 0u16;
    for _ in 0..opened.max(1) {
        let mut handle = 0u32;
        // SAFETY: every pointer is to a live buffer of the given length; the outputs are ours.
        check(unsafe {
            req(
                url.as_ptr(),
                url.len(),
                method.as_ptr(),
                method.len(),
                headers.as_ptr(),
                headers.len(),
                body.as_ptr(),
                body.len(),
                &mut status,
                &mut handle,
            )
        })?;
        handles.push(handle);
    }
    let handle = handles[0];
    let mut text = format!("status {status}\n");

    let mut value = [0u8; 256];
    let mut written = 0usize;
    let name = "Content-Type";
    // SAFETY: as above.
    check(unsafe {
        header_get(handle, name.as_ptr(), name.len(), value.as_mut_ptr(), value.len(), &mut written)
    })?;
    text += &format!("content-type {}\n", String::from_utf8_lossy(&value[..written]));

    let mut all = [0u8; 4096];
    // SAFETY: as above.
    check(unsafe { headers_get_all(handle, all.as_mut_ptr(), all.len(), &mut written) })?;
    let lines = String::from_utf8_lossy(&all[..written]).lines().count();
    text += &format!("headers {lines}\n");

    // Read in small pieces to exercise the host's read position.
    let mut chunk = [0u8; 7];
    loop {
        // SAFETY: as above.
        check(unsafe { body_read(handle, chunk.as_mut_ptr(), chunk.len(), &mut written) })?;
        if written == 0 {
            break;
        }
        text += &String::from_utf8_lossy(&chunk[..written]);
    }
    if leak {
        return Ok(text);
    }
    for handle in handles {
        // SAFETY: a plain handle.
        check(unsafe { close(handle) })?;
    }
    // A closed handle is gone.
    // SAFETY: as above.
    let after = unsafe { body_read(handle, chunk.as_mut_ptr(), chunk.len(), &mut written) };
    text += &format!("\nafter close {after}\n");
    Ok(text)
}
