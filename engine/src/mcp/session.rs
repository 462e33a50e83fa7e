//! Sessions of `/mcp` clients, carried in the `mcp-session-id` itself: the negotiated
//! protocol version and the key it belongs to, signed with HMAC-SHA256. Any replica that
//! shares `mcp.session_secret` can serve any session, and nothing is stored.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Protocol revisions `/mcp` speaks, oldest first. A client asking for one of these gets it;
/// any other gets the newest (and may then disconnect, as the MCP spec says).
pub const PROTOCOL_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

pub fn negotiate(requested: Option<&str>) -> &'static str {
    PROTOCOL_VERSIONS
        .iter()
        .find(|v| Some(**v) == requested)
        .copied()
        .unwrap_or(PROTOCOL_VERSIONS[PROTOCOL_VERSIONS.len() - 1])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub protocol_version: String,
    pub key_id: String,
    /// Unix seconds when the session was created.
    pub created: i64,
}

/// Signed ids are `<hex payload>.<hex mac>`: visible ASCII, as the transport requires.
pub fn sign(session: &Session, secret: &[u8; 32]) -> String {
    let payload = serde_json::json!({
        "v": session.protocol_version,
        "k": session.key_id,
        "t": session.created,
    })
    .to_string();
    let payload = hex::encode(payload);
    let tag = mac(secret, payload.as_bytes());
    format!("{payload}.{tag}")
}

/// The session an id stands for, if it was signed with `secret` and is well formed.
pub fn verify(id: &str, secret: &[u8; 32]) -> Option<Session> {
    let (payload, tag) = id.split_once('.')?;
    let expected = Hmac::<Sha256>::new_from_slice(secret)
        .ok()?
        .chain_update(payload.as_bytes());
    // Constant-time comparison of the tag.
    expected.verify_slice(&hex::decode(tag).ok()?).ok()?;
    let json: serde_json::Value = serde_json::from_slice(&hex::decode(payload).ok()?).ok()?;
    Some(Session {
        protocol_version: json["v"].as_str()?.to_string(),
        key_id: json["k"].as_str()?.to_string(),
        created: json["t"].as_i64()?,
    })
}

fn mac(secret: &[u8; 32], data: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(data);
    hex::encode(m.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            protocol_version: "2025-06-18".into(),
            key_id: "vk-a".into(),
            created: 1_700_000_000,
        }
    }

    #[test]
    fn a_signed_id_verifies_with_the_same_secret_only() {
        let id = sign(&session(), &[7; 32]);
        assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert_eq!(verify(&id, &[7; 32]), Some(session()));
        assert_eq!(verify(&id, &[8; 32]), None);
    }

    #[test]
    fn tampered_or_malformed_ids_are_refused() {
        let id = sign(&session(), &[7; 32]);
        let (payload, tag) = id.split_once('.').unwrap();
        let other = hex::encode(r#"{"v":"2025-06-18","k":"vk-admin","t":1}"#);
        assert_eq!(verify(&format!("{other}.{tag}"), &[7; 32]), None);
        assert_eq!(verify(payload, &[7; 32]), None);
        assert_eq!(verify("not hex.zz", &[7; 32]), None);
        assert_eq!(verify("", &[7; 32]), None);
    }

    #[test]
    fn known_versions_are_kept_and_others_get_the_newest() {
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("1999-01-01")), "2025-11-25");
        assert_eq!(negotiate(None), "2025-11-25");
    }
}
