//! The admin API: a listener of its own (off unless `--admin-listen`), behind a bearer token, to
//! add, replace, remove and list the functions of a served folder while the pod serves.
//!
//! An upload lands in the served folder atomically (a hidden, locked temporary file, fsync,
//! rename, fsync of the folder), so a restart serves the same set and a pod killed mid-upload
//! leaves only a temp file that nothing loads and the next start deletes; then the app reloads at once and the answer
//! says whether the new version compiled, and why not. The folder stays the truth: the watcher
//! would pick the same change up on its own, and a file copied in by hand is served the same way.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use wasmpod_config::{check_name, FunctionSource};
use wasmpod_runtime::{atomic_file, LoadOutcome, LoadReport};

use crate::linger::{Lingering, LINGER_TIME};
use crate::tenants::tenant_name;
use crate::{App, ResponseBody};

/// How the admin API is reached.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// The bearer token every request must present (`--admin-token-file`); `None`: none is
    /// asked for, which [`AdminConfig::check`] allows on loopback only.
    pub token: Option<String>,
    /// The largest module an upload may carry, in bytes.
    pub max_module_bytes: u64,
}

/// Why the admin API may not start as configured.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Anyone who can reach the address could change the pod's functions.
    #[error("--admin-listen {0}: an address other than loopback needs --admin-token-file")]
    NoToken(SocketAddr),
    /// An empty token would let every request through.
    #[error("the admin token file is empty")]
    EmptyToken,
}

impl AdminConfig {
    /// Refuses a non-loopback address without a token, and an empty token.
    pub fn check(&self, address: SocketAddr) -> Result<(), AdminError> {
        match &self.token {
            Some(token) if token.is_empty() => Err(AdminError::EmptyToken),
            None if !address.ip().is_loopback() => Err(AdminError::NoToken(address)),
            _ => Ok(()),
        }
    }
}

/// Serves the admin API on `listener` (HTTP/1.1) for as long as the process runs.
pub async fn serve_admin(listener: TcpListener, app: Arc<App>, config: AdminConfig) {
    if let Some(folder) = folder(&app) {
        remove_abandoned_uploads(folder);
    }
    let config = Arc::new(config);
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("admin: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (app, config) = (app.clone(), config.clone());
        let service = service_fn(move |request: Request<Incoming>| {
            let (app, config) = (app.clone(), config.clone());
            async move { Ok::<_, Infallible>(handle(&app, &config, request, remote).await) }
        });
        let connection =
            builder.serve_connection(TokioIo::new(Lingering::new(stream, LINGER_TIME)), service).into_owned();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%remote, "admin connection ended: {e}");
            }
        });
    }
}

async fn handle(
    app: &App,
    config: &AdminConfig,
    request: Request<Incoming>,
    remote: SocketAddr,
) -> Response<ResponseBody> {
    if let Some(refused) = authorize(config, request.headers()) {
        tracing::warn!(%remote, method = %request.method(), path = request.uri().path(), "admin: refused, {}", refused.1);
        return refused.0;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/functions") else {
        return error(StatusCode::NOT_FOUND, "no such endpoint: the admin API serves /functions");
    };
    if rest.is_empty() || rest == "/" {
        return match method {
            Method::GET => list(app),
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET /functions lists; PUT, GET and DELETE /functions/NAME",
            ),
        };
    }
    let name = match FunctionName::parse(&rest[1..]) {
        Ok(name) => name,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why),
    };
    let answer = match method {
        Method::GET => one(app, &name),
        Method::PUT => upload(app, config, &name, request).await,
        Method::DELETE => delete(app, &name).await,
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "PUT, GET and DELETE /functions/NAME"),
    };
    tracing::info!(%remote, %method, function = %name.0, status = answer.status().as_u16(), "admin request");
    answer
}

/// `None` when the request may proceed; else the answer and the reason to log.
fn authorize(
    config: &AdminConfig,
    headers: &http::HeaderMap,
) -> Option<(Response<ResponseBody>, &'static str)> {
    let token = config.token.as_deref()?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        None => {
            let mut response = error(StatusCode::UNAUTHORIZED, "an Authorization: Bearer token is required");
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Some((response, "no token"))
        }
        Some(presented) if !same_bytes(presented.trim().as_bytes(), token.as_bytes()) => {
            Some((error(StatusCode::FORBIDDEN, "wrong token"), "wrong token"))
        }
        Some(_) => None,
    }
}

/// Compares in time that depends on the lengths only, not on where the first difference is.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// A function's name in the admin API: `NAME` (a top-level `NAME.wasm`, its own tenant) or
/// `TENANT/NAME` (`TENANT/NAME.wasm`), each part following [`check_name`]; its route is
/// `/NAME/...` or `/TENANT/NAME/...`.
struct FunctionName(String);

impl FunctionName {
    fn parse(text: &str) -> Result<FunctionName, String> {
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() > 2 {
            return Err(format!("bad function name {text:?}: a function is NAME or TENANT/NAME"));
        }
        for part in &parts {
            check_name(part).map_err(|why| format!("bad function name: {why}"))?;
        }
        Ok(FunctionName(text.to_owned()))
    }

    fn route(&self) -> String {
        format!("/{}/...", self.0)
    }

    /// `NAME.wasm` or `TENANT/NAME.wasm` under `folder`.
    fn file(&self, folder: &Path) -> PathBuf {
        folder.join(format!("{}.wasm", self.0))
    }
}

/// The served folder; `None` when the pod serves a `modules.toml`.
fn folder(app: &App) -> Option<&Path> {
    match app.source() {
        Some(FunctionSource::Folder(folder)) => Some(folder),
        _ => None,
    }
}

/// The answer when the pod serves a `modules.toml`.
fn not_a_folder() -> Response<ResponseBody> {
    error(
        StatusCode::CONFLICT,
        "the admin API changes a served folder; this pod serves a modules.toml (edit it and reload)",
    )
}

async fn upload(
    app: &App,
    config: &AdminConfig,
    name: &FunctionName,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let Some(folder) = folder(app).map(Path::to_owned) else { return not_a_folder() };
    let max = config.max_module_bytes;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("a module may be at most {max} bytes (--max-module-size)"),
        )
    };
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max) {
        return too_large();
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let bytes = match Limited::new(request.into_body(), limit).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("reading the module: {e}")),
    };
    if bytes.is_empty() {
        return error(StatusCode::BAD_REQUEST, "the body is empty: PUT the module's bytes");
    }
    let file = name.file(&folder);
    let written = tokio::task::spawn_blocking({
        let file = file.clone();
        move || write_atomically(&file, &bytes)
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("writing {}: {e}", file.display()))
        }
        Err(e) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("writing {}: {e}", file.display()))
        }
    }
    let report = app.reload().await;
    let route = name.route();
    let event = report.as_ref().and_then(|r| event_of(r, &route));
    let (status, body) = match event {
        Some(LoadOutcome::Loaded { replaced, compile_time, sha256, size, warnings }) => {
            let status = if *replaced { StatusCode::OK } else { StatusCode::CREATED };
            let warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
            (
                status,
                json!({
                    "name": name.0, "route": route, "compiled": true, "replaced": replaced,
                    "compile_ms": compile_time.as_secs_f64() * 1000.0, "sha256": sha256, "size": size,
                    "warnings": warnings,
                }),
            )
        }
        Some(LoadOutcome::Failed { error, kept_previous }) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({
                "name": name.0, "route": route, "compiled": false, "error": error.to_string(),
                "previous_version_serving": kept_previous,
            }),
        ),
        // The same bytes as the version serving (or a reload that another change already made).
        _ => (StatusCode::OK, function_json(app, name).unwrap_or_else(|| json!({ "name": name.0 }))),
    };
    respond_json(status, &body)
}

async fn delete(app: &App, name: &FunctionName) -> Response<ResponseBody> {
    let Some(folder) = folder(app).map(Path::to_owned) else { return not_a_folder() };
    let mut removed = false;
    for file in [name.file(&folder), name.file(&folder).with_extension("wat")] {
        match std::fs::remove_file(&file) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("removing {}: {e}", file.display()))
            }
        }
    }
    if !removed {
        return error(StatusCode::NOT_FOUND, &format!("no function {:?}", name.0));
    }
    if let Some(parent) = name.file(&folder).parent() {
        sync_dir(parent);
    }
    app.reload().await;
    let mut response = Response::new(ResponseBody::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

fn list(app: &App) -> Response<ResponseBody> {
    let registry = app.registry();
    let catalog = app.catalog();
    let functions: Vec<Value> = registry.functions().map(|f| describe(app, f, &catalog)).collect();
    respond_json(StatusCode::OK, &Value::Array(functions))
}

fn one(app: &App, name: &FunctionName) -> Response<ResponseBody> {
    match function_json(app, name) {
        Some(body) => respond_json(StatusCode::OK, &body),
        None => error(StatusCode::NOT_FOUND, &format!("no function {:?}", name.0)),
    }
}

fn function_json(app: &App, name: &FunctionName) -> Option<Value> {
    let route = name.route();
    let registry = app.registry();
    let function = registry.functions().find(|f| f.name().as_ref() == route)?;
    Some(describe(app, function, &app.catalog()))
}

fn describe(app: &App, function: &wasmpod_runtime::Function, catalog: &Catalog) -> Value {
    let loaded = catalog.get(function.name());
    json!({
        "route": function.name().as_ref(),
        "tenant": tenant_name(function),
        "module": function.spec().module.display().to_string(),
        "state": if function.load_error().is_none() { "ready" } else { "failed" },
        "error": function.load_error(),
        "sha256": loaded.map(|l| l.sha256.clone()),
        "size": loaded.map(|l| l.size),
        "compile_ms": loaded.map(|l| l.compile_time.as_secs_f64() * 1000.0),
        "requests": app.requests_of(function.name()),
    })
}

/// What the last load of each route said: its module's digest, size and compile time (kept so
/// that `GET /functions` can answer without reading the files).
#[derive(Default)]
pub(crate) struct Catalog {
    loaded: HashMap<String, Loaded>,
}

struct Loaded {
    sha256: String,
    size: u64,
    compile_time: Duration,
}

impl Catalog {
    fn get(&self, route: &str) -> Option<&Loaded> {
        self.loaded.get(route)
    }

    /// Takes in what a load did.
    pub(crate) fn record(&mut self, report: &LoadReport) {
        for event in &report.events {
            match &event.outcome {
                LoadOutcome::Loaded { sha256, size, compile_time, .. } => {
                    let loaded = Loaded { sha256: sha256.clone(), size: *size, compile_time: *compile_time };
                    self.loaded.insert(event.route.clone(), loaded);
                }
                LoadOutcome::Removed => {
                    self.loaded.remove(&event.route);
                }
                LoadOutcome::Failed { kept_previous: false, .. } => {
                    self.loaded.remove(&event.route);
                }
                LoadOutcome::Failed { .. } => {}
            }
        }
    }
}

/// The catalog behind a lock, as the app holds it.
pub(crate) type SharedCatalog = Mutex<Catalog>;

/// Locks the catalog; nothing panics while holding it.
pub(crate) fn lock(catalog: &SharedCatalog) -> std::sync::MutexGuard<'_, Catalog> {
    catalog.lock().unwrap_or_else(PoisonError::into_inner)
}

fn event_of<'r>(report: &'r LoadReport, route: &str) -> Option<&'r LoadOutcome> {
    report.events.iter().rev().find(|e| e.route == route).map(|e| &e.outcome)
}

/// Prefix of an upload's temp file (hidden, so neither the loader nor the watcher looks at it).
/// A file that still has it was never renamed into place: its upload was killed, and the next
/// start of the admin API deletes it ([`remove_abandoned_uploads`]).
pub const UPLOAD_TEMP_PREFIX: &str = ".upload-";

/// Writes `bytes` to `file` so that no reader ever sees a part of them, even if the pod is killed
/// mid-write: a locked temp file beside it, fsync, rename over the name, fsync the folder.
fn write_atomically(file: &Path, bytes: &Bytes) -> std::io::Result<()> {
    let folder = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder)?;
    atomic_file::write_atomically(folder, UPLOAD_TEMP_PREFIX, bytes, file)?;
    sync_dir(folder);
    Ok(())
}

/// Deletes the temp files of uploads a killed pod left in the served folder and its tenant
/// folders (an upload in progress in another pod sharing the folder holds a lock and stays).
fn remove_abandoned_uploads(folder: &Path) {
    let tenants =
        std::fs::read_dir(folder).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_dir());
    for dir in std::iter::once(folder.to_owned()).chain(tenants) {
        for (path, result) in atomic_file::remove_abandoned(&dir, UPLOAD_TEMP_PREFIX) {
            match result {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "admin: deleted the temp file of an upload that was killed")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "admin: cannot delete an abandoned upload's temp file: {e}")
                }
            }
        }
    }
}

/// Makes a rename in `folder` durable (best effort: some file systems cannot sync a folder).
fn sync_dir(folder: &Path) {
    if let Err(e) = std::fs::File::open(folder).and_then(|dir| dir.sync_all()) {
        tracing::debug!(folder = %folder.display(), "fsync of the folder: {e}");
    }
}

fn respond_json(status: StatusCode, body: &Value) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(format!("{body}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error(status: StatusCode, message: &str) -> Response<ResponseBody> {
    respond_json(status, &json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_or_two_valid_parts() {
        for good in ["hello", "acme/api", "a.b_c-1"] {
            assert!(FunctionName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "..", "../x", "acme/../x", "a/b/c", "Hello", "a%2fb", ".hidden", "acme/"] {
            assert!(FunctionName::parse(bad).is_err(), "{bad}");
        }
        let name = FunctionName::parse("acme/api").unwrap();
        assert_eq!(name.route(), "/acme/api/...");
        assert_eq!(name.file(Path::new("/srv")), PathBuf::from("/srv/acme/api.wasm"));
    }

    #[test]
    fn a_non_loopback_address_needs_a_token() {
        let open = AdminConfig { token: None, max_module_bytes: 1 };
        assert!(open.check("127.0.0.1:9000".parse().unwrap()).is_ok());
        assert!(open.check("[::1]:9000".parse().unwrap()).is_ok());
        assert!(matches!(open.check("0.0.0.0:9000".parse().unwrap()), Err(AdminError::NoToken(_))));
        let closed = AdminConfig { token: Some("s3cret".into()), max_module_bytes: 1 };
        assert!(closed.check("0.0.0.0:9000".parse().unwrap()).is_ok());
        let empty = AdminConfig { token: Some(String::new()), max_module_bytes: 1 };
        assert!(matches!(empty.check("127.0.0.1:9000".parse().unwrap()), Err(AdminError::EmptyToken)));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"abcd"));
        assert!(!same_bytes(b"", b"a"));
    }

    #[test]
    fn an_atomic_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("acme").join("api.wasm");
        write_atomically(&file, &Bytes::from_static(b"\0asm")).unwrap();
        write_atomically(&file, &Bytes::from_static(b"\0asm2")).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"\0asm2");
        let names: Vec<_> =
            std::fs::read_dir(file.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("api.wasm")]);
    }
}
