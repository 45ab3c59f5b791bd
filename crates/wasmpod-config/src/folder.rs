//! A folder of functions: every `<name>.wasm` / `<name>.wat` is a function at `/<name>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{ConfigError, FunctionSpec, LoadedConfig};

/// Serves every `<name>.wasm` / `<name>.wat` in `dir` at `/<name>` and `/<name>/...`, in name
/// order. When both exist for one name, the compiled `.wasm` wins.
pub fn read_functions_dir(dir: &Path) -> Result<LoadedConfig, ConfigError> {
    let read_dir = |source| ConfigError::Read { path: dir.to_owned(), source };
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(read_dir)? {
        let path = entry.map_err(read_dir)?.path();
        let (Some(stem), Some(ext)) = (path.file_stem().and_then(|s| s.to_str()), path.extension()) else {
            continue;
        };
        if !path.is_file() || (ext != "wasm" && ext != "wat") {
            continue;
        }
        let keep_existing = by_name.get(stem).is_some_and(|p| p.extension().is_some_and(|e| e == "wasm"));
        if !keep_existing {
            by_name.insert(stem.to_owned(), path.clone());
        }
    }
    let functions = by_name
        .into_iter()
        .map(|(name, path)| FunctionSpec::new(format!("/{name}/..."), path))
        .collect::<Vec<_>>();
    let mut loaded = LoadedConfig { functions, warnings: Vec::new() };
    if loaded.functions.is_empty() {
        loaded.warnings.push(format!("{}: no .wasm or .wat files to serve", dir.display()));
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_serves_each_module_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.wat", "a.wasm", "a.wat", "notes.txt", "c.WASM"] {
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
    fn empty_folder_warns() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = read_functions_dir(dir.path()).unwrap();
        assert!(loaded.functions.is_empty());
        assert_eq!(loaded.warnings.len(), 1);
    }
}
