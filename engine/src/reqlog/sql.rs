//! SQL and answer-shaping the stores share, so SQLite and PostgreSQL answer every query
//! alike: the filters of a log page, the page's cursor, and the spend report's rounding,
//! order and total.

use super::query::{
    Cursor, GroupBy, LogPage, LogQuery, SpendQuery, SpendReport, SpendRow, SpendTotals,
    StatusFilter,
};
use super::record::{to_unix_micros, LogRecord};

/// Every stored column but the row id, in the order the stores read them back.
pub(super) const COLUMNS: &str = "request_id, time_us, key_id, team, customer, endpoint, \
    requested_model, provider, model, attempts, status, error_type, prompt_tokens, \
    completion_tokens, cached_tokens, cost_usd, cache, guardrails, total_us, upstream_us, \
    ttft_us, overhead_us, stream, client_disconnected, request_body, response_body, tool";

/// The model a request counts under: the one that served it, else the one it asked for
/// (refusals). Must match the model index expression exactly for the index to be used.
pub(super) const MODEL_EXPR: &str = "COALESCE(model, requested_model)";

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Arg {
    Text(String),
    Int(i64),
    Real(f64),
}

/// `SELECT <columns>, id FROM <table> WHERE ... ORDER BY time_us DESC, id DESC LIMIT ...`
/// for one page of `q`, with its arguments in placeholder order. `placeholder(n, arg)` spells
/// the n-th placeholder (1-based) in the store's dialect. One row beyond the page is asked
/// for: it tells whether another page exists without a COUNT.
pub(super) fn page_query(
    table: &str,
    q: &LogQuery,
    mut placeholder: impl FnMut(usize, &Arg) -> String,
) -> (String, Vec<Arg>) {
    let mut sql = format!("SELECT {COLUMNS}, id FROM {table} WHERE 1 = 1");
    let mut args: Vec<Arg> = Vec::new();
    let mut cond = |sql: &mut String, args: &mut Vec<Arg>, template: &str, values: Vec<Arg>| {
        // `template` has one `{}` per value.
        let mut parts = template.split("{}");
        sql.push_str(" AND ");
        sql.push_str(parts.next().unwrap_or(""));
        for (value, rest) in values.into_iter().zip(parts) {
            args.push(value);
            sql.push_str(&placeholder(args.len(), &args[args.len() - 1]));
            sql.push_str(rest);
        }
    };
    let text_filters = [
        ("key_id", &q.key),
        ("team", &q.team),
        ("customer", &q.customer),
        ("provider", &q.provider),
        ("error_type", &q.error_type),
    ];
    for (column, value) in text_filters {
        if let Some(v) = value {
            cond(
                &mut sql,
                &mut args,
                &format!("{column} = {{}}"),
                vec![Arg::Text(v.clone())],
            );
        }
    }
    if let Some(m) = &q.model {
        // The same expression as the index and as spend's grouping, so a refused request
        // (no model served) is found by the model it asked for.
        cond(
            &mut sql,
            &mut args,
            &format!("{MODEL_EXPR} = {{}}"),
            vec![Arg::Text(m.clone())],
        );
    }
    match q.status {
        // Equality keeps the (status, time) index in time order; a range needs a sort.
        Some(StatusFilter::Exact(code)) => {
            cond(
                &mut sql,
                &mut args,
                "status = {}",
                vec![Arg::Int(code.into())],
            );
        }
        Some(s) => {
            let (lo, hi) = s.range();
            cond(
                &mut sql,
                &mut args,
                "status BETWEEN {} AND {}",
                vec![Arg::Int(lo.into()), Arg::Int(hi.into())],
            );
        }
        None => {}
    }
    if let Some(c) = q.cache {
        cond(
            &mut sql,
            &mut args,
            "cache = {}",
            vec![Arg::Text(c.as_str().into())],
        );
    }
    if let Some(t) = q.since {
        cond(
            &mut sql,
            &mut args,
            "time_us >= {}",
            vec![Arg::Int(to_unix_micros(t))],
        );
    }
    if let Some(t) = q.until {
        cond(
            &mut sql,
            &mut args,
            "time_us < {}",
            vec![Arg::Int(to_unix_micros(t))],
        );
    }
    if let Some(c) = q.min_cost {
        cond(&mut sql, &mut args, "cost_usd >= {}", vec![Arg::Real(c)]);
    }
    if let Some(c) = q.cursor {
        cond(
            &mut sql,
            &mut args,
            "(time_us, id) < ({}, {})",
            vec![Arg::Int(c.time_us), Arg::Int(c.id)],
        );
    }
    args.push(Arg::Int(i64::from(q.limit) + 1));
    sql.push_str(" ORDER BY time_us DESC, id DESC LIMIT ");
    sql.push_str(&placeholder(args.len(), &args[args.len() - 1]));
    (sql, args)
}

/// A page from the rows `page_query` returned (record and row id, in order).
pub(super) fn into_page(rows: Vec<(LogRecord, i64)>, limit: u32) -> LogPage {
    let more = rows.len() > limit as usize;
    let mut records = Vec::with_capacity(rows.len().min(limit as usize));
    let mut last = None;
    for (rec, id) in rows.into_iter().take(limit as usize) {
        last = Some(Cursor {
            time_us: to_unix_micros(rec.time),
            id,
        });
        records.push(rec);
    }
    LogPage {
        records,
        next_cursor: if more { last.map(Cursor::encode) } else { None },
    }
}

/// The column (or expression) spend is grouped by.
pub(super) fn group_column(group_by: GroupBy) -> &'static str {
    match group_by {
        GroupBy::Key => "key_id",
        GroupBy::Team => "team",
        GroupBy::Customer => "customer",
        GroupBy::Provider => "provider",
        // Requests no model served (refusals) count under the model they asked for.
        GroupBy::Model => MODEL_EXPR,
    }
}

/// The `[since, until)` range of a spend query as unix microseconds, open ends widened.
pub(super) fn spend_range(q: &SpendQuery) -> (i64, i64) {
    (
        q.since.map(to_unix_micros).unwrap_or(i64::MIN),
        q.until.map(to_unix_micros).unwrap_or(i64::MAX),
    )
}

/// Significant digits kept in spend sums. A store adds its rows in an order of its own, and
/// floating-point sums in different orders can differ in the last bits; rounding well
/// above that noise makes every store report the same number (12 digits is a millionth of
/// a cent on $10,000).
const SPEND_DIGITS: usize = 12;

pub(super) fn round_usd(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    format!("{x:.prec$e}", prec = SPEND_DIGITS - 1)
        .parse()
        .unwrap_or(x)
}

/// The report from per-group sums in any order: costs rounded, rows ordered by cost
/// (highest first) then group (requests without one first, then byte order), and the total.
pub(super) fn finish_spend(q: &SpendQuery, mut rows: Vec<SpendRow>) -> SpendReport {
    for row in &mut rows {
        row.totals.cost_usd = round_usd(row.totals.cost_usd);
    }
    rows.sort_by(|a, b| {
        b.totals
            .cost_usd
            .total_cmp(&a.totals.cost_usd)
            .then_with(|| a.group.cmp(&b.group))
    });
    let mut total = SpendTotals::default();
    for row in &rows {
        let t = &row.totals;
        total.requests += t.requests;
        total.prompt_tokens += t.prompt_tokens;
        total.completion_tokens += t.completion_tokens;
        total.cached_tokens += t.cached_tokens;
        total.cost_usd += t.cost_usd;
        total.errors += t.errors;
    }
    total.cost_usd = round_usd(total.cost_usd);
    SpendReport {
        group_by: q.group_by,
        since: q.since,
        until: q.until,
        rows,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_their_arguments_in_order() {
        let q = LogQuery::from_query_string(
            "key=vk&model=m&status=4xx&since=1763807400&min_cost=0.5&cursor=5.7&limit=10",
        )
        .unwrap();
        let (sql, args) = page_query("requests", &q, |n, _| format!("${n}"));
        assert!(sql.contains("key_id = $1"), "{sql}");
        assert!(
            sql.contains("COALESCE(model, requested_model) = $2"),
            "{sql}"
        );
        assert!(sql.contains("status BETWEEN $3 AND $4"), "{sql}");
        assert!(sql.contains("time_us >= $5"), "{sql}");
        assert!(sql.contains("cost_usd >= $6"), "{sql}");
        assert!(sql.contains("(time_us, id) < ($7, $8)"), "{sql}");
        assert!(sql.ends_with("LIMIT $9"), "{sql}");
        assert_eq!(args.len(), 9);
        assert_eq!(args[2], Arg::Int(400));
        assert_eq!(args[8], Arg::Int(11));
    }

    #[test]
    fn spend_sums_are_rounded_to_twelve_digits() {
        assert_eq!(round_usd(0.1 + 0.2), 0.3);
        assert_eq!(round_usd(3.75), 3.75);
        assert_eq!(round_usd(0.0), 0.0);
        assert_eq!(round_usd(1.234_567_890_123_4e-7), 1.234_567_890_12e-7);
        assert_eq!(round_usd(123_456.789_012_345), 123_456.789_012);
    }
}
