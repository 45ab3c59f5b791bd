//! A folder of functions: every `<name>.wasm` / `<name>.wat` is a function at `/<name>` (its own
//! tenant), every `<tenant>/<name>.wasm` one at `/<tenant>/<name>` (of that tenant), each with
//! its settings in an optional sidecar `<name>.toml` beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::names::check_name;
use crate::{parse_sidecar, ConfigError, FunctionSpec, LoadedConfig};

/// Reads a served folder:
/// - `<dir>/<tenant>/<name>.wasm` is served at `/<tenant>/<name>` and `/<tenant>/<name>/...`,
///   as a function of tenant `<tenant>`; a tenant folder's name must pass [`check_name`] (one
///   that does not is skipped with a warning when it holds modules);
/// - `<dir>/<name>.wasm` is served at `/<name>` and `/<name>/...`, as a function of tenant
///   `<name>`.
///
/// A sidecar's `tenant` key overrides either. Tenant folders' functions come first (so
/// `/acme/api` reaches `acme/api.wasm` even beside a top-level `acme.wasm`), each group in name
/// order. When both exist for one name, the compiled `.wasm` wins. Hidden and temporary files
/// (see [`is_ignored_name`]) are not functions; deeper folders are not read.
pub fn read_functions_dir(dir: &Path) -> Result<LoadedConfig, ConfigError> {
    let mut loaded = LoadedConfig::default();
    let mut top_level = BTreeMap::new();
    let mut tenants = BTreeMap::new();
    for (path, is_dir) in entries(dir)? {
        if !is_dir {
            add_module(&mut top_level, path);
            continue;
        }
        let Some(tenant) = path.file_name().and_then(|n| n.to_str()).filter(|n| !is_ignored_name(n)) else {
            continue;
        };
        let mut modules = BTreeMap::new();
        for (file, is_dir) in entries(&path)? {
            if !is_dir {
                add_module(&mut modules, file);
            }
        }
        if modules.is_empty() {
            continue;
        }
        match check_name(tenant) {
            Ok(()) => {
                tenants.insert(tenant.to_owned(), modules);
            }
            Err(why) => {
                loaded.warnings.push(format!("{}: skipped, not a tenant folder: {why}", path.display()))
            }
        }
    }
    let functions = tenants
        .iter()
        .flat_map(|(tenant, modules)| {
            modules.iter().map(move |(name, path)| (format!("{tenant}/{name}"), tenant.as_str(), path))
        })
        .chain(top_level.iter().map(|(name, path)| (name.clone(), name.as_str(), path)));
    for (route_name, tenant, path) in functions {
        let (spec, warnings) = folder_function(&route_name, tenant, path)?;
        loaded.functions.push(spec);
        loaded.warnings.extend(warnings);
    }
    if loaded.functions.is_empty() {
        loaded.warnings.push(format!("{}: no .wasm or .wat files to serve", dir.display()));
    }
    Ok(loaded)
}

/// A folder's entries, each with whether it is a folder (following symbolic links).
fn entries(dir: &Path) -> Result<Vec<(PathBuf, bool)>, ConfigError> {
    let read_dir = |source| ConfigError::Read { path: dir.to_owned(), source };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_dir)? {
        let path = entry.map_err(read_dir)?.path();
        let is_dir = path.is_dir();
        entries.push((path, is_dir));
    }
    Ok(entries)
}

/// Adds `path` to `modules` by its function name if it is a module file; the compiled `.wasm`
/// wins over a `.wat` of the same name.
fn add_module(modules: &mut BTreeMap<String, PathBuf>, path: PathBuf) {
    let Some(name) = module_name(&path) else { return };
    if !path.is_file() {
        return;
    }
    let keep_existing = modules.get(name).is_some_and(|p| p.extension().is_some_and(|e| e == "wasm"));
    if !keep_existing {
        modules.insert(name.to_owned(), path.clone());
    }
}

/// The function `module` (a file of a served folder) is: `/<route_name>/...` of `tenant`, with
/// the settings of its sidecar `<name>.toml` when there is one (which may name another tenant),
/// and the sidecar's warnings.
pub fn folder_function(
    route_name: &str,
    tenant: &str,
    module: &Path,
) -> Result<(FunctionSpec, Vec<String>), ConfigError> {
    let mut spec = FunctionSpec::new(format!("/{route_name}/..."), module);
    spec.tenant = Some(tenant.to_owned());
    let sidecar = module.with_extension("toml");
    let warnings = match std::fs::read_to_string(&sidecar) {
        Ok(text) => parse_sidecar(&sidecar, &text, &mut spec)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(ConfigError::Read { path: sidecar, source }),
    };
    Ok((spec, warnings))
}

/// The function name a file of a served folder stands for: `<name>` of `<name>.wasm` or
/// `<name>.wat`; `None` for anything else (other extensions, hidden or temporary names).
pub fn module_name(path: &Path) -> Option<&str> {
    let file = path.file_name()?.to_str()?;
    if is_ignored_name(file) {
        return None;
    }
    let (stem, ext) = file.rsplit_once('.')?;
    (!stem.is_empty() && (ext == "wasm" || ext == "wat")).then_some(stem)
}

/// Names an editor, a copy or an upload uses while a file is not complete: hidden files
/// (`.name`, which `cp` and uploads use as temporaries), `name~`, `#name#`, `*.tmp`, `*.swp`,
/// `*.part`.
pub fn is_ignored_name(file: &str) -> bool {
    file.starts_with('.')
        || file.starts_with('#')
        || file.ends_with('~')
        || [".tmp", ".swp", ".part"].iter().any(|ext| file.ends_with(ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_serves_each_module_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        for name in
            ["b.wat", "a.wasm", "a.wat", "notes.txt", "c.WASM", ".hidden.wasm", "d.wasm~", "e.wasm.tmp"]
        {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("d.wasm")).unwrap();
        let loaded = read_functions_dir(dir.path()).unwrap();
        let routes: Vec<(&str, String)> = loaded
            .functions
            .iter()
            .map(|f| (f.route.as_str(), f.module.file_name().unwrap().to_string_lossy().into_owned()))
            .collect();
        assert_eq!(routes, vec![("/a/...", "a.wasm".to_owned()), ("/b/...", "b.wat".to_owned())]);
    }

    #[test]
    fn a_sidecar_holds_its_functions_settings() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wasm"), "").unwrap();
        std::fs::write(dir.path().join("a.toml"), "interface = \"raw\"\nshade = 1\n").unwrap();
        std::fs::write(dir.path().join("b.wasm"), "").unwrap();
        let loaded = read_functions_dir(dir.path()).unwrap();
        let interfaces: Vec<_> = loaded.functions.iter().map(|f| f.interface).collect();
        assert_eq!(interfaces, vec![Some(crate::Interface::Raw), None]);
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].ends_with("a.toml: unknown key `shade` ignored"), "{:?}", loaded.warnings);
    }

    #[test]
    fn a_bad_sidecar_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wasm"), "").unwrap();
        std::fs::write(dir.path().join("a.toml"), "timeout = 0\n").unwrap();
        let err = read_functions_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("a.toml:1:") && err.contains("field `timeout`"), "{err}");
    }

    #[test]
    fn tenant_folders_hold_their_tenants_functions() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for folder in ["acme", "beta", "Bad Name", ".git", "empty"] {
            std::fs::create_dir(root.join(folder)).unwrap();
        }
        for file in
            ["acme/api.wasm", "acme/web.wat", "beta/api.wat", "acme.wasm", "solo.wat", "Bad Name/x.wasm"]
        {
            std::fs::write(root.join(file), "").unwrap();
        }
        std::fs::write(root.join(".git/hook.wasm"), "").unwrap();
        std::fs::create_dir(root.join("acme/deeper")).unwrap();
        std::fs::write(root.join("acme/deeper/no.wasm"), "").unwrap();
        std::fs::write(root.join("beta/api.toml"), "tenant = \"gamma\"\n").unwrap();
        let loaded = read_functions_dir(root).unwrap();
        let functions: Vec<(&str, &str)> =
            loaded.functions.iter().map(|f| (f.route.as_str(), f.tenant.as_deref().unwrap())).collect();
        assert_eq!(
            functions,
            vec![
                ("/acme/api/...", "acme"),
                ("/acme/web/...", "acme"),
                ("/beta/api/...", "gamma"),
                ("/acme/...", "acme"),
                ("/solo/...", "solo"),
            ]
        );
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(
            loaded.warnings[0].contains("Bad Name: skipped, not a tenant folder"),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn a_bad_tenant_in_a_sidecar_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wasm"), "").unwrap();
        std::fs::write(dir.path().join("a.toml"), "\ntenant = \"../b\"\n").unwrap();
        let err = read_functions_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("a.toml:2:") && err.contains("field `tenant`"), "{err}");
    }

    #[test]
    fn empty_folder_warns() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = read_functions_dir(dir.path()).unwrap();
        assert!(loaded.functions.is_empty());
        assert_eq!(loaded.warnings.len(), 1);
    }
}
