//! What `GET /admin/logs` and `GET /admin/spend` ask for, parsed from the URL query string,
//! and the shapes they answer with.

use super::record::{format_time, rfc3339, CacheResult, LogRecord};
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use std::fmt;

pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

/// A bad query parameter: names the parameter, the value and what would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub param: String,
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid query parameter `{}`: {}",
            self.param, self.message
        )
    }
}

impl std::error::Error for QueryError {}

fn bad(param: &str, message: String) -> QueryError {
    QueryError {
        param: param.to_string(),
        message,
    }
}

/// Which statuses a log query keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// One exact status, e.g. `429`.
    Exact(u16),
    /// A class: `4xx` keeps 400..=499.
    Class(u16),
    /// `ok`: below 400.
    Ok,
    /// `error`: 400 and above.
    Error,
}

impl StatusFilter {
    /// Inclusive range of statuses kept.
    pub fn range(self) -> (u16, u16) {
        match self {
            StatusFilter::Exact(s) => (s, s),
            StatusFilter::Class(c) => (c * 100, c * 100 + 99),
            StatusFilter::Ok => (0, 399),
            StatusFilter::Error => (400, 999),
        }
    }

    fn parse(text: &str) -> Result<StatusFilter, QueryError> {
        let t = text.trim().to_ascii_lowercase();
        let parsed = match t.as_str() {
            "ok" => Some(StatusFilter::Ok),
            "error" => Some(StatusFilter::Error),
            _ if t.len() == 3 && t.ends_with("xx") => t[..1]
                .parse::<u16>()
                .ok()
                .filter(|c| (1..=5).contains(c))
                .map(StatusFilter::Class),
            _ => t
                .parse::<u16>()
                .ok()
                .filter(|s| (100..=599).contains(s))
                .map(StatusFilter::Exact),
        };
        parsed.ok_or_else(|| {
            bad(
                "status",
                format!("`{text}` is not a status; expected an HTTP status (429), a class (4xx), `ok` or `error`"),
            )
        })
    }
}

/// Filters and page position for `GET /admin/logs`. Every filter is optional; results are
/// newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct LogQuery {
    pub key: Option<String>,
    pub team: Option<String>,
    pub customer: Option<String>,
    pub provider: Option<String>,
    /// Matches the model that served the request, or the requested model when none did.
    pub model: Option<String>,
    pub status: Option<StatusFilter>,
    pub error_type: Option<String>,
    pub cache: Option<CacheResult>,
    /// Inclusive.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
    pub min_cost: Option<f64>,
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

impl Default for LogQuery {
    fn default() -> Self {
        LogQuery {
            key: None,
            team: None,
            customer: None,
            provider: None,
            model: None,
            status: None,
            error_type: None,
            cache: None,
            since: None,
            until: None,
            min_cost: None,
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

impl LogQuery {
    /// Parses `key=vk-ml&since=2026-11-22T00:00:00Z&limit=50` (without the leading `?`).
    /// Unknown parameters are errors, so a typo never silently widens the result.
    pub fn from_query_string(query: &str) -> Result<LogQuery, QueryError> {
        let mut q = LogQuery::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let v = value.trim();
            // An empty value (`?team=`) means "no filter", as HTML forms send it.
            if v.is_empty() {
                continue;
            }
            match &*name {
                "key" => q.key = Some(v.to_string()),
                "team" => q.team = Some(v.to_string()),
                "customer" => q.customer = Some(v.to_string()),
                "provider" => q.provider = Some(v.to_string()),
                "model" => q.model = Some(v.to_string()),
                "status" => q.status = Some(StatusFilter::parse(v)?),
                "error_type" => q.error_type = Some(v.to_string()),
                "cache" => q.cache = Some(parse_cache(v)?),
                "since" => q.since = Some(parse_time("since", v)?),
                "until" => q.until = Some(parse_time("until", v)?),
                "min_cost" => q.min_cost = Some(parse_cost(v)?),
                "limit" => q.limit = parse_limit(v)?,
                "cursor" => q.cursor = Some(Cursor::parse(v)?),
                other => {
                    return Err(bad(
                        other,
                        "unknown parameter; use key, team, customer, provider, model, status, \
                         error_type, cache, since, until, min_cost, limit or cursor"
                            .into(),
                    ))
                }
            }
        }
        check_range(q.since, q.until)?;
        Ok(q)
    }
}

/// Where the next page starts: the (time, row id) of the last record returned. Row ids break
/// ties between records of the same microsecond, so no record is skipped or repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub time_us: i64,
    pub id: i64,
}

impl Cursor {
    pub fn encode(self) -> String {
        format!("{}.{}", self.time_us, self.id)
    }

    fn parse(text: &str) -> Result<Cursor, QueryError> {
        text.split_once('.')
            .and_then(|(t, id)| {
                Some(Cursor {
                    time_us: t.parse().ok()?,
                    id: id.parse().ok()?,
                })
            })
            .ok_or_else(|| {
                bad(
                    "cursor",
                    format!(
                        "`{text}` is not a cursor; pass the `next_cursor` of a previous answer"
                    ),
                )
            })
    }
}

/// `GET /admin/logs` answer: `{"records": [...], "next_cursor": "..." | null}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogPage {
    pub records: Vec<LogRecord>,
    /// Set when more records may follow; pass it back as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// What spend is summed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Key,
    Team,
    Customer,
    Model,
    Provider,
}

impl GroupBy {
    fn parse(text: &str) -> Result<GroupBy, QueryError> {
        match text {
            "key" => Ok(GroupBy::Key),
            "team" => Ok(GroupBy::Team),
            "customer" => Ok(GroupBy::Customer),
            "model" => Ok(GroupBy::Model),
            "provider" => Ok(GroupBy::Provider),
            _ => Err(bad(
                "group_by",
                format!("`{text}` is not a grouping; use key, team, customer, model or provider"),
            )),
        }
    }
}

/// `GET /admin/spend?group_by=model&since=...&until=...`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendQuery {
    pub group_by: GroupBy,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl SpendQuery {
    /// `group_by` is required: a total without a grouping is in every answer anyway.
    pub fn from_query_string(query: &str) -> Result<SpendQuery, QueryError> {
        let (mut group_by, mut since, mut until) = (None, None, None);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let v = value.trim();
            if v.is_empty() {
                continue;
            }
            match &*name {
                "group_by" => group_by = Some(GroupBy::parse(v)?),
                "since" => since = Some(parse_time("since", v)?),
                "until" => until = Some(parse_time("until", v)?),
                other => {
                    return Err(bad(
                        other,
                        "unknown parameter; use group_by, since or until".into(),
                    ))
                }
            }
        }
        check_range(since, until)?;
        let group_by = group_by.ok_or_else(|| {
            bad(
                "group_by",
                "missing; use key, team, customer, model or provider".into(),
            )
        })?;
        Ok(SpendQuery {
            group_by,
            since,
            until,
        })
    }
}

/// Sums over the requests of one group (or of all of them, for `total`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SpendTotals {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub cost_usd: f64,
    /// Requests answered with a status of 400 or more.
    pub errors: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendRow {
    /// The key id, team, ... of this group; `null` for requests without one (e.g. no team).
    pub group: Option<String>,
    #[serde(flatten)]
    pub totals: SpendTotals,
}

/// `GET /admin/spend` answer. Rows are ordered by cost, highest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendReport {
    pub group_by: GroupBy,
    #[serde(serialize_with = "rfc3339::serialize_opt")]
    pub since: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339::serialize_opt")]
    pub until: Option<DateTime<Utc>>,
    pub rows: Vec<SpendRow>,
    pub total: SpendTotals,
}

/// RFC 3339 (`2026-11-22T10:30:00Z`) or unix seconds (`1763807400`, fractions allowed).
fn parse_time(param: &str, text: &str) -> Result<DateTime<Utc>, QueryError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let unix = text
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| Utc.timestamp_micros((s * 1e6).round() as i64).single());
    unix.ok_or_else(|| {
        bad(
            param,
            format!(
                "`{text}` is not a time; expected RFC 3339 (2026-11-22T10:30:00Z) or unix seconds (1763807400)"
            ),
        )
    })
}

fn check_range(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<(), QueryError> {
    match (since, until) {
        (Some(s), Some(u)) if s >= u => Err(bad(
            "until",
            format!(
                "{} is not after since ({}); the range would be empty",
                format_time(u),
                format_time(s)
            ),
        )),
        _ => Ok(()),
    }
}

fn parse_cost(text: &str) -> Result<f64, QueryError> {
    text.parse::<f64>()
        .ok()
        .filter(|c| c.is_finite() && *c >= 0.0)
        .ok_or_else(|| {
            bad(
                "min_cost",
                format!("`{text}` is not a cost; expected a non-negative number of USD like 0.05"),
            )
        })
}

fn parse_limit(text: &str) -> Result<u32, QueryError> {
    text.parse::<u32>()
        .ok()
        .filter(|l| (1..=MAX_LIMIT).contains(l))
        .ok_or_else(|| {
            bad(
                "limit",
                format!(
                    "`{text}` is not a page size; expected a whole number from 1 to {MAX_LIMIT}"
                ),
            )
        })
}

fn parse_cache(text: &str) -> Result<CacheResult, QueryError> {
    text.parse().map_err(|_| {
        bad(
            "cache",
            format!("`{text}` is not a cache result; use miss, hit-exact, hit-semantic or off"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_parses() {
        let q = LogQuery::from_query_string(
            "key=vk-ml&team=ml&customer=acme&provider=openai&model=gpt-4o&status=4xx\
             &error_type=rate_limited&cache=hit-exact&since=2026-11-22T10:00:00%2B01:00\
             &until=1800000000&min_cost=0.25&limit=7&cursor=1763807400000000.42",
        )
        .unwrap();
        assert_eq!(q.key.as_deref(), Some("vk-ml"));
        assert_eq!(q.team.as_deref(), Some("ml"));
        assert_eq!(q.customer.as_deref(), Some("acme"));
        assert_eq!(q.provider.as_deref(), Some("openai"));
        assert_eq!(q.model.as_deref(), Some("gpt-4o"));
        assert_eq!(q.status, Some(StatusFilter::Class(4)));
        assert_eq!(q.error_type.as_deref(), Some("rate_limited"));
        assert_eq!(q.cache, Some(CacheResult::HitExact));
        assert_eq!(format_time(q.since.unwrap()), "2026-11-22T09:00:00.000000Z");
        assert_eq!(q.until.unwrap().timestamp(), 1_800_000_000);
        assert_eq!(q.min_cost, Some(0.25));
        assert_eq!(q.limit, 7);
        assert_eq!(
            q.cursor,
            Some(Cursor {
                time_us: 1_763_807_400_000_000,
                id: 42
            })
        );
        let d = LogQuery::from_query_string("").unwrap();
        assert_eq!(d, LogQuery::default());
        assert_eq!(d.limit, 100);
        assert_eq!(LogQuery::from_query_string("team=").unwrap().team, None);
    }

    #[test]
    fn statuses_accept_codes_classes_and_words() {
        let s = |t: &str| LogQuery::from_query_string(&format!("status={t}")).map(|q| q.status);
        assert_eq!(s("429").unwrap(), Some(StatusFilter::Exact(429)));
        assert_eq!(s("5XX").unwrap(), Some(StatusFilter::Class(5)));
        assert_eq!(s("ok").unwrap(), Some(StatusFilter::Ok));
        assert_eq!(s("error").unwrap(), Some(StatusFilter::Error));
        assert_eq!(StatusFilter::Class(4).range(), (400, 499));
        for wrong in ["42", "9xx", "fine", "600"] {
            assert_eq!(s(wrong).unwrap_err().param, "status", "{wrong}");
        }
    }

    #[test]
    fn bad_values_name_the_parameter_and_the_accepted_form() {
        let err = |q: &str| LogQuery::from_query_string(q).unwrap_err();
        let e = err("since=yesterday");
        assert_eq!(e.param, "since");
        assert!(e.to_string().contains("`yesterday`"), "{e}");
        assert!(e.to_string().contains("RFC 3339"), "{e}");
        assert!(e.to_string().contains("unix seconds"), "{e}");
        assert_eq!(err("until=-5").param, "until");
        assert_eq!(err("limit=0").param, "limit");
        assert!(err("limit=1001").to_string().contains("1 to 1000"));
        assert_eq!(err("limit=ten").param, "limit");
        assert_eq!(err("min_cost=-1").param, "min_cost");
        assert_eq!(err("min_cost=NaN").param, "min_cost");
        assert_eq!(err("cache=hit").param, "cache");
        assert_eq!(err("cursor=abc").param, "cursor");
        assert_eq!(err("modle=gpt-4o").param, "modle");
        let e = err("since=2026-11-22T00:00:00Z&until=2026-11-21T00:00:00Z");
        assert_eq!(e.param, "until");
    }

    #[test]
    fn spend_queries_need_a_known_grouping() {
        let q = SpendQuery::from_query_string("group_by=model&since=1763807400").unwrap();
        assert_eq!(q.group_by, GroupBy::Model);
        assert_eq!(q.since.unwrap().timestamp(), 1_763_807_400);
        assert_eq!(q.until, None);
        let e = SpendQuery::from_query_string("group_by=region").unwrap_err();
        assert_eq!(e.param, "group_by");
        assert!(e.message.contains("region"));
        assert_eq!(
            SpendQuery::from_query_string("").unwrap_err().param,
            "group_by"
        );
        assert_eq!(
            SpendQuery::from_query_string("group_by=key&since=tomorrow")
                .unwrap_err()
                .param,
            "since"
        );
        assert_eq!(
            SpendQuery::from_query_string("group_by=key&limit=5")
                .unwrap_err()
                .param,
            "limit"
        );
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            time_us: 1_763_807_400_000_001,
            id: 9,
        };
        assert_eq!(Cursor::parse(&c.encode()), Ok(c));
    }
}
