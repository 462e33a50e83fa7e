//! The `logs:` section of tollgate.yaml.
//!
//! ```yaml
//! logs: {kind: sqlite, path: ./tollgate-logs.db, bodies: false, queue: 10000,
//!        retention: {max_age: 30d, max_rows: 10000000}}
//! ```

use crate::config::units::DurationStr;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where request records go. Omitting the section logs to `./tollgate-logs.db`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    #[serde(default)]
    pub kind: LogStoreKind,
    /// SQLite file, relative to the config file's directory.
    #[serde(default = "default_path")]
    pub path: String,
    /// Keep request and response bodies. Off by default: bodies hold user data and are large.
    #[serde(default)]
    pub bodies: bool,
    /// Records waiting to be written; beyond this they are dropped and counted, so a slow
    /// disk never slows requests.
    #[serde(default = "default_queue")]
    pub queue: usize,
    #[serde(default)]
    pub retention: RetentionConfig,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            kind: LogStoreKind::default(),
            path: default_path(),
            bodies: false,
            queue: default_queue(),
            retention: RetentionConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStoreKind {
    #[default]
    Sqlite,
    /// No request log: recording is a no-op and the admin log endpoints answer that logging is off.
    None,
}

/// Oldest records go first when either bound is crossed; `null` turns a bound off.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    #[serde(default = "default_max_age")]
    pub max_age: Option<DurationStr>,
    #[serde(default = "default_max_rows")]
    pub max_rows: Option<u64>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: default_max_age(),
            max_rows: default_max_rows(),
        }
    }
}

impl RetentionConfig {
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age.map(|d| d.0)
    }
}

fn default_path() -> String {
    "./tollgate-logs.db".into()
}
fn default_queue() -> usize {
    10_000
}
fn default_max_age() -> Option<DurationStr> {
    Some(DurationStr(Duration::from_secs(30 * 86_400)))
}
fn default_max_rows() -> Option<u64> {
    Some(10_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<LogsConfig, String> {
        yaml_serde::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_sqlite_beside_the_config_without_bodies() {
        let c = parse("{}").unwrap();
        assert_eq!(c, LogsConfig::default());
        assert_eq!(c.kind, LogStoreKind::Sqlite);
        assert_eq!(c.path, "./tollgate-logs.db");
        assert!(!c.bodies);
        assert_eq!(c.queue, 10_000);
        assert_eq!(
            c.retention.max_age(),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(c.retention.max_rows, Some(10_000_000));
    }

    #[test]
    fn every_field_can_be_set() {
        let c = parse(
            "{kind: sqlite, path: /var/lib/tg/logs.db, bodies: true, queue: 50, \
             retention: {max_age: 7d, max_rows: 1000}}",
        )
        .unwrap();
        assert_eq!(c.path, "/var/lib/tg/logs.db");
        assert!(c.bodies);
        assert_eq!(c.queue, 50);
        assert_eq!(c.retention.max_age(), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(c.retention.max_rows, Some(1000));
        let off = parse("{kind: none}").unwrap();
        assert_eq!(off.kind, LogStoreKind::None);
        let unbounded = parse("{retention: {max_age: null, max_rows: null}}").unwrap();
        assert_eq!(unbounded.retention.max_age(), None);
        assert_eq!(unbounded.retention.max_rows, None);
    }

    #[test]
    fn unknown_fields_and_kinds_are_errors() {
        assert!(parse("{kind: sqlite, pth: x.db}")
            .unwrap_err()
            .contains("pth"));
        assert!(parse("{kind: postgres}").unwrap_err().contains("postgres"));
        assert!(parse("{retention: {max_age: 30}}")
            .unwrap_err()
            .contains("needs a unit"));
    }
}
