//! A folder of functions: every `<name>.wasm` / `<name>.wat` is a function at `/<name>`, with its
//! settings in an optional sidecar `<name>.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{parse_sidecar, ConfigError, FunctionSpec, LoadedConfig};

/// Serves every `<name>.wasm` / `<name>.wat` in `dir` at `/<name>` and `/<name>/...`, in name
/// order. When both exist for one name, the compiled `.wasm` wins. Hidden and temporary files
/// (see [`is_ignored_name`]) are not functions.
pub fn read_functions_dir(dir: &Path) -> Result<LoadedConfig, ConfigError> {
    let read_dir = |source| ConfigError::Read { path: dir.to_owned(), source };
    let mut by_name: BTreeMap<String, PathBuf> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(read_dir)? {
        let path = entry.map_err(read_dir)?.path();
        let Some(name) = module_name(&path) else { continue };
        if !path.is_file() {
            continue;
        }
        let keep_existing = by_name.get(name).is_some_and(|p| p.extension().is_some_and(|e| e == "wasm"));
        if !keep_existing {
            by_name.insert(name.to_owned(), path.clone());
        }
    }
    let mut loaded = LoadedConfig::default();
    for (name, path) in by_name {
        let (spec, warnings) = folder_function(&name, &path)?;
        loaded.functions.push(spec);
        loaded.warnings.extend(warnings);
    }
    if loaded.functions.is_empty() {
        loaded.warnings.push(format!("{}: no .wasm or .wat files to serve", dir.display()));
    }
    Ok(loaded)
}

/// The function `module` (a file of a served folder) is: `/<name>/...`, with the settings of
/// its sidecar `<name>.toml` when there is one, and the sidecar's warnings.
pub fn folder_function(name: &str, module: &Path) -> Result<(FunctionSpec, Vec<String>), ConfigError> {
    let mut spec = FunctionSpec::new(format!("/{name}/..."), module);
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
    fn empty_folder_warns() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = read_functions_dir(dir.path()).unwrap();
        assert!(loaded.functions.is_empty());
        assert_eq!(loaded.warnings.len(), 1);
    }
}
