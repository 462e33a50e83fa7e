//! `routing:` and `guardrails:` as written in tollgate.yaml (SPEC §6–§7).

use crate::guardrails::config::GuardrailConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// `fast: [openai/gpt-4o-mini, anthropic/claude-haiku-4-5]`: first is primary, the rest
    /// fallbacks in order.
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    /// `global`, `virtual_key:ID`, `team:ID` or `customer:ID`.
    #[serde(default = "global")]
    pub scope: String,
    /// Lower first within a scope; ties keep file order.
    #[serde(default)]
    pub priority: i64,
    /// CEL condition; omitted means always.
    #[serde(default)]
    pub when: Option<String>,
    pub targets: Vec<TargetConfig>,
    #[serde(default)]
    pub fallbacks: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `provider/model`, a bare model, or an alias.
    pub model: String,
    #[serde(default = "one")]
    pub weight: u32,
}

fn global() -> String {
    "global".into()
}

fn one() -> u32 {
    1
}

/// The guardrails section: a list, each one compiled into every key it applies to.
pub type GuardrailsConfig = Vec<GuardrailConfig>;
