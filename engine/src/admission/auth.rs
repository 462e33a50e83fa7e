//! Who is calling: the virtual key from the request headers (SPEC §3).

use crate::error::{ApiError, ErrorType};
use crate::plan::{KeyDigest, KeyPlan, Plan};
use http::HeaderMap;
use sha2::{Digest, Sha256};

/// Headers a key is read from, in order of precedence.
const KEY_HEADERS: [&str; 5] = [
    "x-tollgate-key",
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
];

/// The key the caller presented, if any. `Authorization` must use the Bearer scheme.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    KEY_HEADERS.iter().find_map(|name| {
        let value = headers.get(*name)?.to_str().ok()?.trim();
        let value = if *name == "authorization" {
            let (scheme, rest) = value.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            rest.trim()
        } else {
            value
        };
        (!value.is_empty()).then_some(value)
    })
}

/// Resolves the caller to a key plan. Keys are looked up by SHA-256 digest, so the secret is
/// never compared byte by byte and lookup time does not depend on how much of it matched.
pub fn authenticate<'p>(
    plan: &'p Plan,
    headers: &HeaderMap,
    now_unix: i64,
) -> Result<&'p KeyPlan, ApiError> {
    let Some(secret) = presented_key(headers) else {
        return if plan.auth_required {
            Err(ApiError::new(
                ErrorType::MissingKey,
                "no virtual key: send it as `Authorization: Bearer <key>` or `x-tollgate-key`",
            ))
        } else {
            Ok(&plan.anonymous)
        };
    };
    let digest: KeyDigest = Sha256::digest(secret.as_bytes()).into();
    let Some(&idx) = plan.key_by_digest.get(&digest) else {
        // Without required auth, SDKs still send placeholder keys; treat them as anonymous.
        return if plan.auth_required {
            Err(ApiError::new(ErrorType::InvalidKey, "unknown virtual key"))
        } else {
            Ok(&plan.anonymous)
        };
    };
    let key = &plan.keys[idx];
    check_usable(key, now_unix)?;
    Ok(key)
}

/// A known key may still be refused: disabled, or past `expires_at`. Shared with
/// `tollgate test` and `explain`, which name keys by id instead of presenting a secret.
pub fn check_usable(key: &KeyPlan, now_unix: i64) -> Result<(), ApiError> {
    if key.disabled {
        return Err(ApiError::new(
            ErrorType::InvalidKey,
            format!("virtual key `{}` is disabled", key.id),
        ));
    }
    if let Some(exp) = key.expires_at {
        if now_unix >= exp {
            let when = chrono::DateTime::from_timestamp(exp, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            return Err(ApiError::new(
                ErrorType::InvalidKey,
                format!("virtual key `{}` expired at {when}", key.id),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn tollgate_header_wins_over_bearer() {
        let h = headers(&[("authorization", "Bearer b"), ("x-tollgate-key", "t")]);
        assert_eq!(presented_key(&h), Some("t"));
    }

    #[test]
    fn every_header_form_is_read() {
        for name in ["x-api-key", "x-goog-api-key", "api-key"] {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static("k"));
            assert_eq!(presented_key(&h), Some("k"), "{name}");
        }
        assert_eq!(
            presented_key(&headers(&[("authorization", "bearer  k ")])),
            Some("k")
        );
    }

    #[test]
    fn basic_auth_is_not_a_key() {
        assert_eq!(
            presented_key(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer ")])),
            None
        );
    }
}
