//! The PostgreSQL schema and its numbered migrations.
//!
//! Versions follow the SQLite store's (`PRAGMA user_version` there): migration N here makes
//! the same change as migration N there, so one number describes both schemas. Applied
//! versions are rows of `tollgate_schema_migrations`; tables carry a `tollgate_` prefix
//! because the database may be shared with other applications.

use super::OpError;
use tokio_postgres::Client;

/// Schema changes in order. Append only: never edit an entry that has shipped.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the requests table, as SQLite's migration 1. Times are unix microseconds (as in
    // SQLite, so cursors and filters compare the same integers); attempts and guardrail
    // actions are JSON text, read back whole. Every index ends in (time_us, id) so a
    // filtered, newest-first page is one backward index scan with no sort, ties included.
    "CREATE TABLE tollgate_requests (
        id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        request_id          TEXT NOT NULL,
        time_us             BIGINT NOT NULL,
        key_id              TEXT,
        team                TEXT,
        customer            TEXT,
        endpoint            TEXT NOT NULL,
        requested_model     TEXT,
        provider            TEXT,
        model               TEXT,
        attempts            TEXT NOT NULL,
        status              INTEGER NOT NULL,
        error_type          TEXT,
        prompt_tokens       BIGINT NOT NULL,
        completion_tokens   BIGINT NOT NULL,
        cached_tokens       BIGINT NOT NULL,
        cost_usd            DOUBLE PRECISION NOT NULL,
        cache               TEXT NOT NULL,
        guardrails          TEXT NOT NULL,
        total_us            BIGINT NOT NULL,
        upstream_us         BIGINT,
        ttft_us             BIGINT,
        overhead_us         BIGINT NOT NULL,
        stream              BOOLEAN NOT NULL,
        client_disconnected BOOLEAN NOT NULL,
        request_body        TEXT,
        response_body       TEXT
    );
    CREATE INDEX tollgate_requests_time ON tollgate_requests (time_us, id);
    CREATE INDEX tollgate_requests_key ON tollgate_requests (key_id, time_us, id);
    CREATE INDEX tollgate_requests_team ON tollgate_requests (team, time_us, id);
    CREATE INDEX tollgate_requests_customer ON tollgate_requests (customer, time_us, id);
    CREATE INDEX tollgate_requests_model
        ON tollgate_requests ((COALESCE(model, requested_model)), time_us, id);
    CREATE INDEX tollgate_requests_provider ON tollgate_requests (provider, time_us, id);
    CREATE INDEX tollgate_requests_status ON tollgate_requests (status, time_us, id);",
    // 2: MCP tool calls, as SQLite's migration 2: server, tool, arguments (after redaction),
    // result size and whether the tool reported an error, as JSON text.
    "ALTER TABLE tollgate_requests ADD COLUMN tool TEXT;",
    // 3: as SQLite's migration 3, fewer indexes to maintain on every insert.
    "DROP INDEX IF EXISTS tollgate_requests_team;
     DROP INDEX IF EXISTS tollgate_requests_customer;
     DROP INDEX IF EXISTS tollgate_requests_provider;",
];

/// Any fixed number: gateways sharing a database take this transaction-scoped advisory
/// lock, so only one of them migrates and the others then see its result.
const MIGRATION_LOCK: i64 = 0x746f_6c6c_6761_7465; // "tollgate"

/// Brings the schema up to date in one transaction (PostgreSQL DDL is transactional, so a
/// failed migration leaves nothing half-applied).
pub(super) async fn migrate(client: &mut Client) -> Result<(), OpError> {
    let known = MIGRATIONS.len() as i64;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // Look before creating: `CREATE TABLE IF NOT EXISTS` needs the CREATE privilege even
    // when the table exists, and a gateway may run as a user that only reads and writes.
    let exists = tx
        .query_one(
            "SELECT to_regclass('tollgate_schema_migrations') IS NOT NULL",
            &[],
        )
        .await?;
    if !exists.try_get::<_, bool>(0)? {
        tx.batch_execute(
            "CREATE TABLE tollgate_schema_migrations (
                version    INTEGER PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await?;
    }
    let row = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0)::int8 FROM tollgate_schema_migrations",
            &[],
        )
        .await?;
    let found: i64 = row.try_get(0)?;
    if found > known {
        return Err(OpError::SchemaTooNew { found, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.batch_execute(sql).await?;
        let version = i as i32 + 1;
        tx.execute(
            "INSERT INTO tollgate_schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
        tracing::info!(version, "request log: PostgreSQL schema migrated");
    }
    tx.commit().await?;
    Ok(())
}
