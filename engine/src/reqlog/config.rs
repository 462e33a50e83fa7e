//! The `logs:` section of tollgate.yaml.
//!
//! ```yaml
//! logs: {kind: sqlite, path: ./tollgate-logs.db, bodies: false, queue: 10000,
//!        retention: {max_age: 30d, max_rows: 10000000}}
//! logs: {kind: postgres, url: "postgres://tollgate:${PG_PASSWORD}@db:5432/tollgate"}
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
    /// SQLite file, relative to the config file's directory (`kind: sqlite` only;
    /// `./tollgate-logs.db` when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// PostgreSQL connection URL (`kind: postgres` only). Its password is never shown.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "redact_url"
    )]
    pub url: Option<String>,
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
            path: None,
            url: None,
            bodies: false,
            queue: default_queue(),
            retention: RetentionConfig::default(),
        }
    }
}

impl LogsConfig {
    /// The SQLite file as written in the config (before resolving against its directory).
    pub fn sqlite_path(&self) -> &str {
        self.path.as_deref().unwrap_or(DEFAULT_PATH)
    }

    /// Fields that do not fit together, as `(field, message)`: the field names the place
    /// in `logs:` the error is reported at.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match self.kind {
            LogStoreKind::Sqlite => {
                if self.url.is_some() {
                    out.push((
                        "url",
                        "`url` is for `kind: postgres`; a SQLite log takes `path`".to_string(),
                    ));
                }
            }
            LogStoreKind::Postgres => {
                if self.path.is_some() {
                    out.push((
                        "path",
                        "`path` is for `kind: sqlite`; a PostgreSQL log takes `url`".to_string(),
                    ));
                }
                match &self.url {
                    None => out.push((
                        "kind",
                        "`kind: postgres` needs `url: postgres://user:password@host:5432/db`"
                            .to_string(),
                    )),
                    Some(url) => {
                        if let Err(e) = super::check_postgres_url(url) {
                            out.push(("url", e));
                        }
                    }
                }
            }
            LogStoreKind::None => {
                for (field, set) in [("path", self.path.is_some()), ("url", self.url.is_some())] {
                    if set {
                        out.push((field, format!("`{field}` has no effect with `kind: none`")));
                    }
                }
            }
        }
        if self.queue == 0 {
            out.push(("queue", "queue must be at least 1".to_string()));
        }
        out
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStoreKind {
    #[default]
    Sqlite,
    /// A PostgreSQL database: one log shared by every gateway replica.
    Postgres,
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

const DEFAULT_PATH: &str = "./tollgate-logs.db";

/// `postgres://user:secret@host/db` → `postgres://[REDACTED]@host/db`, and a `password=`
/// query parameter hidden too: `/admin/config` shows where the log goes, not how to log in.
fn redact_url<S: serde::Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_str(&super::redact_postgres_url(url)),
        None => s.serialize_none(),
    }
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
        assert_eq!(c.sqlite_path(), "./tollgate-logs.db");
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
        assert_eq!(c.sqlite_path(), "/var/lib/tg/logs.db");
        assert!(c.problems().is_empty());
        assert!(c.bodies);
        assert_eq!(c.queue, 50);
        assert_eq!(c.retention.max_age(), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(c.retention.max_rows, Some(1000));
        let pg = parse(
            "{kind: postgres, url: 'postgres://tg:pw@127.0.0.1:5432/logs', bodies: true, \
             retention: {max_age: 1d, max_rows: 5}}",
        )
        .unwrap();
        assert_eq!(pg.kind, LogStoreKind::Postgres);
        assert_eq!(
            pg.url.as_deref(),
            Some("postgres://tg:pw@127.0.0.1:5432/logs")
        );
        assert_eq!(pg.retention.max_rows, Some(5));
        assert!(pg.problems().is_empty(), "{:?}", pg.problems());
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
        assert!(parse("{kind: mysql}").unwrap_err().contains("mysql"));
        assert!(parse("{kind: postgres, uri: 'postgres://h/db'}")
            .unwrap_err()
            .contains("uri"));
        assert!(parse("{retention: {max_age: 30}}")
            .unwrap_err()
            .contains("needs a unit"));
    }

    /// Fields that parse but do not belong to the kind are refused, never ignored.
    #[test]
    fn fields_of_another_kind_are_problems() {
        let problems =
            |yaml: &str| -> Vec<(&'static str, String)> { parse(yaml).unwrap().problems() };
        let p = problems("{kind: postgres}");
        assert_eq!(p[0].0, "kind");
        assert!(p[0].1.contains("needs `url"), "{p:?}");
        let p = problems("{kind: postgres, url: 'postgres://h/db', path: x.db}");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "path");
        let p = problems("{kind: sqlite, url: 'postgres://h/db'}");
        assert_eq!(p[0].0, "url");
        let p = problems("{kind: none, path: x.db}");
        assert_eq!(p[0].0, "path");
        let p = problems("{queue: 0}");
        assert_eq!(p[0].0, "queue");
        let p = problems("{kind: postgres, url: 'http://h/db'}");
        assert_eq!(p[0].0, "url");
        assert!(p[0].1.contains("postgres://"), "{p:?}");
    }

    #[test]
    fn the_url_password_is_never_serialized() {
        let c =
            parse("{kind: postgres, url: 'postgres://tg:hunter2@db.internal:5432/logs'}").unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(json.contains("db.internal:5432/logs"), "{json}");
        let c =
            parse("{kind: postgres, url: 'postgres://db/logs?user=tg&password=hunter2'}").unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(json.contains("user=tg"), "{json}");
    }
}
