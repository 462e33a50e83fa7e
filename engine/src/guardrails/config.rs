//! One entry of `guardrails:` in tollgate.yaml (SPEC §7), as the user writes it.

use super::pii::PiiKind;
use crate::config::units::DurationStr;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailConfig {
    pub name: String,
    #[serde(default)]
    pub stage: Stage,
    /// Optional CEL condition scoping the guardrail (`key.team != "security"`).
    #[serde(default)]
    pub when: Option<String>,
    pub detect: DetectConfig,
    pub action: Action,
    /// Fraction of requests checked, 0–1; omitted means every request.
    #[serde(default)]
    pub sample_rate: Option<f64>,
}

impl GuardrailConfig {
    /// Checks what serde cannot: ranges, and actions the detector cannot perform. Detector
    /// contents (regex syntax, CEL) are checked when they are compiled.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("guardrail `name` must not be empty".into());
        }
        if let Some(rate) = self.sample_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "guardrail `{}`: sample_rate {rate} must be between 0 and 1",
                    self.name
                ));
            }
        }
        let text = matches!(
            self.detect,
            DetectConfig::Regex(_) | DetectConfig::Keywords(_) | DetectConfig::Pii(_)
        );
        if self.action == Action::Redact && !text {
            return Err(format!(
                "guardrail `{}`: `redact` needs a regex, keywords or pii detector (cel and webhook find no text to replace)",
                self.name
            ));
        }
        if let DetectConfig::Webhook(w) = &self.detect {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(format!(
                    "guardrail `{}`: webhook url `{}` must start with http:// or https://",
                    self.name, w.url
                ));
            }
        }
        Ok(())
    }

    pub fn sample_rate(&self) -> f64 {
        self.sample_rate.unwrap_or(1.0)
    }
}

/// Which text a guardrail looks at: the request before the provider, the response before the
/// client, or both. Omitted means `input`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    #[default]
    Input,
    Output,
    Both,
}

impl Stage {
    pub fn input(self) -> bool {
        matches!(self, Stage::Input | Stage::Both)
    }

    pub fn output(self) -> bool {
        matches!(self, Stage::Output | Stage::Both)
    }
}

/// `detect:` — a map with exactly one of these keys.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "DetectFields", into = "DetectFields")]
pub enum DetectConfig {
    Regex(Vec<String>),
    Keywords(Vec<String>),
    Pii(Vec<PiiKind>),
    /// A CEL condition over the request variables; true means detected.
    Cel(String),
    Webhook(WebhookConfig),
}

/// The wire form of `detect`: YAML's serde maps an externally tagged enum to `!tag` syntax,
/// while users write `{regex: [...]}`; a struct of options reads that and rejects typos.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct DetectFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regex: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keywords: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pii: Option<Vec<PiiKind>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    webhook: Option<WebhookConfig>,
}

impl TryFrom<DetectFields> for DetectConfig {
    type Error = String;

    fn try_from(f: DetectFields) -> Result<Self, String> {
        let mut found = Vec::new();
        if let Some(v) = f.regex {
            found.push(("regex", DetectConfig::Regex(v)));
        }
        if let Some(v) = f.keywords {
            found.push(("keywords", DetectConfig::Keywords(v)));
        }
        if let Some(v) = f.pii {
            found.push(("pii", DetectConfig::Pii(v)));
        }
        if let Some(v) = f.cel {
            found.push(("cel", DetectConfig::Cel(v)));
        }
        if let Some(v) = f.webhook {
            found.push(("webhook", DetectConfig::Webhook(v)));
        }
        if found.len() == 1 {
            return Ok(found.remove(0).1);
        }
        let names: Vec<&str> = found.iter().map(|(n, _)| *n).collect();
        Err(format!(
            "`detect` needs exactly one of regex, keywords, pii, cel, webhook (found {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ))
    }
}

impl From<DetectConfig> for DetectFields {
    fn from(d: DetectConfig) -> Self {
        let mut f = DetectFields::default();
        match d {
            DetectConfig::Regex(v) => f.regex = Some(v),
            DetectConfig::Keywords(v) => f.keywords = Some(v),
            DetectConfig::Pii(v) => f.pii = Some(v),
            DetectConfig::Cel(v) => f.cel = Some(v),
            DetectConfig::Webhook(v) => f.webhook = Some(v),
        }
        f
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default = "default_webhook_timeout")]
    pub timeout: DurationStr,
    #[serde(default)]
    pub on_error: OnError,
}

fn default_webhook_timeout() -> DurationStr {
    DurationStr(Duration::from_secs(1))
}

/// What a webhook failure (timeout, connection error, non-2xx) means. Omitted: `allow`, so an
/// outage of the checker does not take the gateway down with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    #[default]
    Allow,
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// 403 `guardrail_blocked`; nothing reaches the provider.
    Block,
    /// Replace matches with `[REDACTED:KIND]`.
    Redact,
    /// Let it through; count it and report it in `x-tollgate-guardrail-flags`.
    Flag,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = r#"
- name: no-cloud-secrets
  stage: input
  when: 'key.team != "security"'
  detect: {regex: ['AKIA[0-9A-Z]{16}', 'ghp_[A-Za-z0-9]{36}']}
  action: block
- name: pii
  stage: both
  detect: {pii: [email, phone, credit_card, iban, ipv4, us_ssn]}
  action: redact
- name: long-prompts
  detect: {cel: 'prompt_tokens > 16000'}
  action: block
- name: vendor-check
  detect: {webhook: {url: http://127.0.0.1:9100/check, timeout: 200ms, on_error: allow}}
  action: block
  sample_rate: 0.2
- name: words
  stage: output
  detect: {keywords: [falcon]}
  action: flag
"#;

    fn parse(yaml: &str) -> Result<Vec<GuardrailConfig>, String> {
        yaml_serde::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_the_spec_example() {
        let g = parse(SPEC_EXAMPLE).unwrap();
        assert_eq!(g.len(), 5);
        assert_eq!(g[0].when.as_deref(), Some(r#"key.team != "security""#));
        assert!(matches!(&g[0].detect, DetectConfig::Regex(p) if p.len() == 2));
        assert_eq!(g[1].stage, Stage::Both);
        assert_eq!(g[1].detect, DetectConfig::Pii(PiiKind::ALL.to_vec()),);
        assert_eq!(g[2].stage, Stage::Input, "stage defaults to input");
        let DetectConfig::Webhook(w) = &g[3].detect else {
            panic!()
        };
        assert_eq!(w.timeout.0, Duration::from_millis(200));
        assert_eq!(w.on_error, OnError::Allow);
        assert_eq!(g[3].sample_rate(), 0.2);
        assert_eq!(g[4].action, Action::Flag);
        assert!(g.iter().all(|g| g.validate().is_ok()));
        // Serializes back to the form users write (for `/admin/config`).
        let json = serde_json::to_string(&g[1].detect).unwrap();
        assert_eq!(
            json,
            r#"{"pii":["email","phone","credit_card","iban","ipv4","us_ssn"]}"#
        );
    }

    #[test]
    fn rejects_unknown_fields_kinds_and_detectors() {
        let bad = [
            "- {name: x, detect: {pii: [email]}, action: redact, colour: red}",
            "- {name: x, detect: {pii: [passport]}, action: redact}",
            "- {name: x, detect: {regexes: ['a']}, action: block}",
            "- {name: x, detect: {regex: ['a'], pii: [email]}, action: block}",
            "- {name: x, detect: {}, action: block}",
            "- {name: x, detect: {webhook: {url: 'http://x', retries: 2}}, action: block}",
            "- {name: x, detect: {cel: 'true'}, action: allow}",
            "- {name: x, stage: request, detect: {cel: 'true'}, action: block}",
        ];
        for yaml in bad {
            assert!(parse(yaml).is_err(), "accepted: {yaml}");
        }
        let e = parse("- {name: x, detect: {regex: ['a'], pii: [email]}, action: block}");
        assert!(e.unwrap_err().contains("exactly one of"));
    }

    #[test]
    fn validation_explains_what_is_wrong() {
        let g = &parse("- {name: x, detect: {cel: 'true'}, action: redact}").unwrap()[0];
        assert!(g.validate().unwrap_err().contains("redact"));
        let g =
            &parse("- {name: x, detect: {pii: [email]}, action: flag, sample_rate: 2}").unwrap()[0];
        assert!(g.validate().unwrap_err().contains("sample_rate"));
        let g =
            &parse("- {name: x, detect: {webhook: {url: 'ftp://x'}}, action: block}").unwrap()[0];
        assert!(g.validate().unwrap_err().contains("http://"));
        let DetectConfig::Webhook(w) = &g.detect else {
            panic!()
        };
        assert_eq!(w.timeout.0, Duration::from_secs(1));
    }
}
