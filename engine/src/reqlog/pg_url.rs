//! The `logs.url` of a PostgreSQL log: checked at compile time, shown without its password.

/// Why `url` cannot be used, in words for `tollgate check`. Never echoes the URL: it may hold
/// a password.
pub fn check_postgres_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(
            "`url` is not a PostgreSQL URL; expected postgres://user:password@host:5432/db"
                .to_string(),
        );
    }
    #[cfg(feature = "postgres")]
    {
        use tokio_postgres::config::SslMode;
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("invalid PostgreSQL URL: {}", super::postgres::describe(&e)))?;
        if config.get_hosts().is_empty() {
            return Err(
                "the PostgreSQL URL names no host; add one (postgres://user@host/db, \
                 or ?host=/run/postgresql for a local socket)"
                    .to_string(),
            );
        }
        if !matches!(config.get_ssl_mode(), SslMode::Disable | SslMode::Prefer) {
            return Err(
                "TLS connections to PostgreSQL are not supported by this build; \
                 use sslmode=disable (or prefer) over a trusted network or a local socket"
                    .to_string(),
            );
        }
    }
    Ok(())
}

/// `postgres://tg:secret@db/logs?password=x` → `postgres://tg:[REDACTED]@db/logs?password=[REDACTED]`:
/// the user, host and database stay visible.
pub fn redact_postgres_url(url: &str) -> String {
    let mut out = url.to_string();
    if let (Some(scheme_end), Some(at)) = (out.find("://"), out.rfind('@')) {
        let user_start = scheme_end + 3;
        if at > user_start {
            // The last `@` ends the user info: an unescaped `@` in a password comes before it.
            if let Some(colon) = out[user_start..at].find(':') {
                out.replace_range(user_start + colon + 1..at, "[REDACTED]");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let hidden: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => {
                    format!("{name}=[REDACTED]")
                }
                _ => pair.to_string(),
            })
            .collect();
        out = format!("{base}{}", hidden.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_wherever_the_url_carries_them() {
        assert_eq!(
            redact_postgres_url("postgres://tg:s3cret@db:5432/logs"),
            "postgres://tg:[REDACTED]@db:5432/logs"
        );
        assert_eq!(
            redact_postgres_url("postgresql://tg:p@ss@db/logs"),
            "postgresql://tg:[REDACTED]@db/logs"
        );
        assert_eq!(
            redact_postgres_url("postgres://db/logs?user=tg&password=s3cret&sslmode=disable"),
            "postgres://db/logs?user=tg&password=[REDACTED]&sslmode=disable"
        );
        // Nothing secret: unchanged.
        assert_eq!(
            redact_postgres_url("postgres://tg@db/logs"),
            "postgres://tg@db/logs"
        );
        assert_eq!(redact_postgres_url("postgres://db"), "postgres://db");
    }

    #[test]
    fn urls_are_checked_without_echoing_them() {
        assert!(check_postgres_url("postgres://tg:pw@127.0.0.1:5432/logs").is_ok());
        let e = check_postgres_url("mysql://tg:pw@db/logs").unwrap_err();
        assert!(!e.contains("pw"), "{e}");
        #[cfg(feature = "postgres")]
        {
            let e = check_postgres_url("postgres://tg:pw@db:notaport/logs").unwrap_err();
            assert!(e.contains("invalid PostgreSQL URL"), "{e}");
            assert!(!e.contains("pw@"), "{e}");
            let e = check_postgres_url("postgres://tg@db/logs?sslmode=require").unwrap_err();
            assert!(e.contains("TLS"), "{e}");
            assert!(check_postgres_url("postgres://tg@db/logs?sslmode=disable").is_ok());
        }
    }
}
