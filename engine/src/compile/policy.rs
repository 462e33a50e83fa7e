//! Routing rules, aliases and guardrails: compiled once, then merged and folded per key so
//! a request walks one ordered list (the "decision tree" of DESIGN.md).

use super::check_unique;
use crate::config::{ConfigError, LoadedConfig};
use crate::guardrails::config::DetectConfig;
use crate::guardrails::Detector;
use crate::plan::{GuardDetect, GuardrailPlan, KeyGuardrail, KeyRule, RulePlan};
use crate::policy::{Expr, Folded, KeyAttrs, Var};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Which callers a rule applies to; the rank orders scopes for a key (narrowest first).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Key(String),
    Team(String),
    Customer(String),
    Global,
}

impl Scope {
    fn rank(&self) -> u8 {
        match self {
            Scope::Key(_) => 0,
            Scope::Team(_) => 1,
            Scope::Customer(_) => 2,
            Scope::Global => 3,
        }
    }

    fn applies_to(&self, key: &KeyAttrs) -> bool {
        match self {
            Scope::Key(id) => *key.id == **id,
            Scope::Team(t) => key.team.as_deref() == Some(t.as_str()),
            Scope::Customer(c) => key.customer.as_deref() == Some(c.as_str()),
            Scope::Global => true,
        }
    }
}

/// Names the scopes may refer to.
pub(super) struct Known<'a> {
    pub keys: HashSet<&'a str>,
    pub teams: HashSet<&'a str>,
    pub customers: HashSet<&'a str>,
}

/// Every rule and guardrail of the config, compiled but not yet specialised to a key.
pub(super) struct PolicySet {
    /// Rules sorted by (scope rank, priority, file order).
    rules: Vec<(Scope, Arc<RulePlan>)>,
    pub(super) file_order: Vec<Arc<RulePlan>>,
    guardrails: Vec<(Arc<GuardrailPlan>, Option<Expr>)>,
    pub(super) aliases: HashMap<String, Vec<Arc<str>>>,
}

pub(super) fn compile_policy(
    loaded: &LoadedConfig,
    known: &Known,
    errors: &mut Vec<ConfigError>,
) -> PolicySet {
    let cfg = &loaded.config;
    check_unique(
        loaded,
        "rule name",
        cfg.routing
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("routing.rules[{i}].name"), r.name.as_str())),
        errors,
    );
    check_unique(
        loaded,
        "guardrail name",
        cfg.guardrails
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("guardrails[{i}].name"), g.name.as_str())),
        errors,
    );
    let mut rules = Vec::new();
    for (i, r) in cfg.routing.rules.iter().enumerate() {
        let at = |f: &str| format!("routing.rules[{i}].{f}");
        let scope = match parse_scope(&r.scope, known) {
            Ok(s) => s,
            Err(msg) => {
                errors.push(loaded.error_at(&at("scope"), format!("rule `{}`: {msg}", r.name)));
                continue;
            }
        };
        let when = r.when.as_deref().and_then(|src| {
            compile_expr(src)
                .map_err(|e| {
                    errors.push(loaded.error_at(
                        &at("when"),
                        format!("rule `{}`: invalid CEL at {e}", r.name),
                    ))
                })
                .ok()
        });
        if let Some(w) = &when {
            if w.vars().contains(Var::Response) || w.vars().contains(Var::Tool) {
                errors.push(loaded.error_at(&at("when"), format!("rule `{}`: routing rules run before the call and cannot read `response` or `tool`", r.name)));
            }
        }
        if r.targets.is_empty() || r.targets.iter().all(|t| t.weight == 0) {
            errors.push(loaded.error_at(
                &at("targets"),
                format!(
                    "rule `{}` needs at least one target with a weight above 0",
                    r.name
                ),
            ));
        }
        rules.push((
            scope.clone(),
            i,
            r.priority,
            Arc::new(RulePlan {
                name: r.name.as_str().into(),
                scope: r.scope.as_str().into(),
                when,
                targets: r
                    .targets
                    .iter()
                    .map(|t| (Arc::from(t.model.as_str()), t.weight))
                    .collect(),
                fallbacks: r.fallbacks.iter().map(|f| Arc::from(f.as_str())).collect(),
            }),
        ));
    }
    let file_order: Vec<Arc<RulePlan>> = rules.iter().map(|(_, _, _, r)| r.clone()).collect();
    rules.sort_by_key(|(scope, idx, priority, _)| (scope.rank(), *priority, *idx));

    let mut guardrails = Vec::new();
    for (i, g) in cfg.guardrails.iter().enumerate() {
        let at = format!("guardrails[{i}]");
        if let Err(msg) = g.validate() {
            errors.push(loaded.error_at(&at, format!("guardrail `{}`: {msg}", g.name)));
            continue;
        }
        let detect = match &g.detect {
            DetectConfig::Cel(src) => match compile_expr(src) {
                Ok(e) => GuardDetect::Cel(e),
                Err(e) => {
                    errors.push(loaded.error_at(
                        &format!("{at}.detect.cel"),
                        format!("guardrail `{}`: invalid CEL at {e}", g.name),
                    ));
                    continue;
                }
            },
            DetectConfig::Webhook(w) => match w.url.parse::<http::Uri>() {
                Ok(url) if matches!(url.scheme_str(), Some("http" | "https")) => {
                    GuardDetect::Webhook {
                        url,
                        timeout: w.timeout.0,
                        on_error: w.on_error,
                    }
                }
                _ => {
                    errors.push(loaded.error_at(
                        &format!("{at}.detect.webhook.url"),
                        format!("guardrail `{}`: invalid webhook URL `{}`", g.name, w.url),
                    ));
                    continue;
                }
            },
            other => match Detector::from_config(&g.name, other) {
                Ok(Some(d)) => GuardDetect::Text(Arc::new(d)),
                Ok(None) => continue, // cel and webhook are handled above
                Err(e) => {
                    errors.push(loaded.error_at(
                        &format!("{at}.detect"),
                        format!("guardrail `{}`: {e}", g.name),
                    ));
                    continue;
                }
            },
        };
        let when = g.when.as_deref().and_then(|src| {
            compile_expr(src)
                .map_err(|e| {
                    errors.push(loaded.error_at(
                        &format!("{at}.when"),
                        format!("guardrail `{}`: invalid CEL at {e}", g.name),
                    ))
                })
                .ok()
        });
        guardrails.push((
            Arc::new(GuardrailPlan {
                name: g.name.as_str().into(),
                stage: g.stage,
                detect,
                action: g.action,
                sample_rate: g.sample_rate(),
            }),
            when,
        ));
    }

    let mut aliases = HashMap::new();
    for (name, models) in &cfg.routing.aliases {
        if models.is_empty() {
            errors.push(loaded.error_at(
                &format!("routing.aliases.{name}"),
                format!("alias `{name}` names no model"),
            ));
            continue;
        }
        aliases.insert(
            name.clone(),
            models.iter().map(|m| Arc::from(m.as_str())).collect(),
        );
    }
    PolicySet {
        rules: rules.into_iter().map(|(s, _, _, r)| (s, r)).collect(),
        file_order,
        guardrails,
        aliases,
    }
}

fn compile_expr(src: &str) -> Result<Expr, String> {
    Expr::compile(src).map_err(|e| e.to_string())
}

fn parse_scope(text: &str, known: &Known) -> Result<Scope, String> {
    if text == "global" {
        return Ok(Scope::Global);
    }
    let (kind, id) = text.split_once(':').ok_or_else(|| {
        format!("unknown scope `{text}`: use global, virtual_key:ID, team:ID or customer:ID")
    })?;
    let (scope, exists) = match kind {
        "virtual_key" => (Scope::Key(id.into()), known.keys.contains(id)),
        "team" => (Scope::Team(id.into()), known.teams.contains(id)),
        "customer" => (Scope::Customer(id.into()), known.customers.contains(id)),
        _ => {
            return Err(format!(
                "unknown scope kind `{kind}`: use global, virtual_key, team or customer"
            ))
        }
    };
    if !exists {
        return Err(format!("scope `{text}` names no configured {kind}"));
    }
    Ok(scope)
}

/// A condition as one key sees it: `None` for always, or dropped (`Err`) for never.
fn fold_for(when: &Option<Expr>, key: &KeyAttrs) -> Result<Option<Expr>, ()> {
    let Some(expr) = when else { return Ok(None) };
    // Folding only pays off for conditions that read `key`; others stay as written.
    if !expr.vars().contains(Var::Key) {
        return Ok(Some(expr.clone()));
    }
    match expr.fold(key) {
        Folded::Always => Ok(None),
        Folded::Never => Err(()),
        Folded::Depends(e) => Ok(Some(e)),
    }
}

impl PolicySet {
    /// The rules and guardrails of one key, in evaluation order, folded for it.
    pub(super) fn for_key(
        &self,
        key: &KeyAttrs,
    ) -> (Vec<KeyRule>, Vec<KeyGuardrail>, Vec<KeyGuardrail>) {
        let rules = self
            .rules
            .iter()
            .filter(|(scope, _)| scope.applies_to(key))
            .filter_map(|(_, rule)| {
                fold_for(&rule.when, key).ok().map(|when| KeyRule {
                    rule: rule.clone(),
                    when,
                })
            })
            .collect();
        let (mut input, mut output) = (Vec::new(), Vec::new());
        for (g, when) in &self.guardrails {
            let Ok(when) = fold_for(when, key) else {
                continue;
            };
            let kg = KeyGuardrail {
                guardrail: g.clone(),
                when,
            };
            if g.stage.input() {
                input.push(kg.clone());
            }
            if g.stage.output() {
                output.push(kg);
            }
        }
        (rules, input, output)
    }
}
