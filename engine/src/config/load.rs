//! Reading a config file: expand variables, parse YAML or JSON, keep a source map for
//! compile errors. Every error carries `file:line:col`.

use super::expand::expand_vars;
use super::source_map::SourceMap;
use super::Config;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// An error located in a config file, printed as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    Yaml,
    Json,
}

impl ConfigFormat {
    pub fn of_path(path: &Path) -> ConfigFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => ConfigFormat::Json,
            _ => ConfigFormat::Yaml,
        }
    }
}

/// A parsed config with what compile needs to locate its errors.
#[derive(Debug)]
pub struct LoadedConfig {
    pub config: Config,
    /// The expanded text. Its source map (a second parse) is built only when an error needs
    /// a position: on a large config that halves the load time of every reload.
    text: String,
    source: OnceLock<SourceMap>,
    /// The file name errors are reported against.
    pub origin: String,
    /// The directory relative paths in the config resolve against.
    pub base_dir: PathBuf,
}

impl LoadedConfig {
    /// The 1-based line where `path` (e.g. `routing.rules[3]`) is written; 0 if unknown.
    pub fn line_of(&self, path: &str) -> usize {
        self.source_map().locate(path).map_or(0, |p| p.line)
    }

    fn source_map(&self) -> &SourceMap {
        self.source.get_or_init(|| SourceMap::build(&self.text))
    }

    /// An error at the place `path` (e.g. `virtual_keys[0].team`) is written.
    pub fn error_at(&self, path: &str, message: impl Into<String>) -> ConfigError {
        let pos = self.source_map().locate(path);
        ConfigError {
            file: self.origin.clone(),
            line: pos.map_or(1, |p| p.line),
            col: pos.map_or(1, |p| p.col),
            message: message.into(),
        }
    }
}

pub fn load_file(path: &Path) -> Result<LoadedConfig, Vec<ConfigError>> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            file: origin.clone(),
            line: 1,
            col: 1,
            message: format!("cannot read config: {e}"),
        }]
    })?;
    let mut loaded = load_str(&text, &origin, ConfigFormat::of_path(path))?;
    loaded.base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(loaded)
}

pub fn load_str(
    text: &str,
    origin: &str,
    format: ConfigFormat,
) -> Result<LoadedConfig, Vec<ConfigError>> {
    let at = |line: usize, col: usize, message: String| ConfigError {
        file: origin.to_string(),
        line,
        col,
        message,
    };
    let expanded = expand_vars(text, |name| std::env::var(name).ok()).map_err(|missing| {
        missing
            .into_iter()
            .map(|m| {
                at(
                    m.line,
                    m.col,
                    format!(
                        "environment variable `{}` is not set (write ${{{}:-default}} to give a default)",
                        m.name, m.name
                    ),
                )
            })
            .collect::<Vec<_>>()
    })?;
    let config: Config = match format {
        ConfigFormat::Json => serde_json::from_str(&expanded).map_err(|e| {
            let msg = e.to_string();
            let msg = strip_position_suffix(&msg, " at line ");
            vec![at(e.line(), e.column(), msg.to_string())]
        })?,
        ConfigFormat::Yaml => yaml_serde::from_str(&expanded).map_err(|e| {
            let (line, col) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            let msg = e.to_string();
            vec![at(
                line,
                col,
                strip_position_suffix(&msg, " at line ").to_string(),
            )]
        })?,
    };
    Ok(LoadedConfig {
        config,
        text: expanded,
        source: OnceLock::new(),
        origin: origin.to_string(),
        base_dir: PathBuf::from("."),
    })
}

/// Parsers append their own position to messages; ours goes in front instead.
fn strip_position_suffix<'a>(msg: &'a str, marker: &str) -> &'a str {
    msg.rfind(marker).map_or(msg, |i| &msg[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_is_located() {
        let err = load_str(
            "server:\n  listen: 127.0.0.1:0\n  lisen: 1\n",
            "t.yaml",
            ConfigFormat::Yaml,
        )
        .unwrap_err();
        assert_eq!(err.len(), 1);
        let e = &err[0];
        assert_eq!((e.line, e.file.as_str()), (3, "t.yaml"));
        assert!(e.message.contains("unknown field `lisen`"), "{}", e.message);
        assert!(e.to_string().starts_with("t.yaml:3:"), "{e}");
    }

    #[test]
    fn json_is_accepted() {
        let loaded = load_str(
            r#"{"providers": [{"name": "p", "kind": "openai", "base_url": "http://x"}]}"#,
            "t.json",
            ConfigFormat::Json,
        )
        .unwrap();
        assert_eq!(loaded.config.providers[0].name, "p");
    }

    #[test]
    fn malformed_json_is_located() {
        let err = load_str("{\n \"providers\": [,]\n}", "t.json", ConfigFormat::Json).unwrap_err();
        assert_eq!((err[0].line, err[0].file.as_str()), (2, "t.json"));
    }

    #[test]
    fn missing_variable_is_located() {
        let err = load_str(
            "providers:\n  - name: p\n    kind: openai\n    keys: [{key: ${TG_SURELY_UNSET_VAR}}]\n",
            "t.yaml",
            ConfigFormat::Yaml,
        )
        .unwrap_err();
        assert_eq!((err[0].line, err[0].col), (4, 18));
        assert!(err[0].message.contains("TG_SURELY_UNSET_VAR"));
    }
}
