//! Routing rules: the first rule of the key's ordered list whose condition holds picks a
//! weighted target; aliases expand to a primary and fallbacks (SPEC §6).

use crate::plan::{pick_weighted, KeyPlan, Plan, RulePlan};
use crate::policy::RequestView;
use std::borrow::Cow;
use std::sync::Arc;

/// Where the rules send a request, before providers and limits are considered.
#[derive(Debug)]
pub struct RouteChoice<'p, 'r> {
    /// The rule that matched, if any.
    pub rule: Option<&'p RulePlan>,
    /// The model to route: a rule target, an alias's primary, or the requested model.
    pub model: Cow<'r, str>,
    /// Rule fallbacks, then the request's `fallbacks`, then the alias's other models.
    pub fallbacks: Vec<Cow<'r, str>>,
    /// The model came from a rule or an alias (the administrator's choice), not the client.
    pub from_policy: bool,
}

/// How one rule fared, for `explain` and `tollgate_cel_errors_total`.
#[derive(Debug)]
pub enum RuleResult {
    Matched,
    NotMatched,
    /// A runtime CEL error: the rule does not match.
    Error(String),
}

pub fn choose_route<'p, 'r>(
    plan: &'p Plan,
    key: &'p KeyPlan,
    requested: &'r str,
    body_fallbacks: &'r [String],
    view: &dyn RequestView,
    roll: u64,
    on_rule: &mut dyn FnMut(&'p RulePlan, &RuleResult),
) -> RouteChoice<'p, 'r>
where
    'p: 'r,
{
    let mut rule_hit = None;
    for kr in &key.rules {
        let result = match &kr.when {
            None => RuleResult::Matched,
            Some(expr) => match expr.eval_view(view) {
                Ok(true) => RuleResult::Matched,
                Ok(false) => RuleResult::NotMatched,
                Err(e) => RuleResult::Error(e.to_string()),
            },
        };
        on_rule(&kr.rule, &result);
        if matches!(result, RuleResult::Matched) {
            rule_hit = Some(&*kr.rule);
            break;
        }
    }
    let (model, mut fallbacks): (Cow<'r, str>, Vec<Cow<'r, str>>) = match rule_hit {
        Some(rule) => {
            let target = pick_weighted(rule.targets.iter().map(|(m, w)| (m, *w)), roll)
                .map_or(Cow::Borrowed(requested), |m: &Arc<str>| Cow::Borrowed(&**m));
            (
                target,
                rule.fallbacks.iter().map(|f| Cow::Borrowed(&**f)).collect(),
            )
        }
        None => (Cow::Borrowed(requested), Vec::new()),
    };
    fallbacks.extend(body_fallbacks.iter().map(|f| Cow::Borrowed(f.as_str())));
    let (model, aliased) = match plan.aliases.get(&*model) {
        Some(list) => {
            fallbacks.extend(list[1..].iter().map(|m| Cow::Borrowed(&**m)));
            (Cow::Borrowed(&*list[0]), true)
        }
        None => (model, false),
    };
    fallbacks.retain(|f| *f != model);
    RouteChoice {
        rule: rule_hit,
        model,
        fallbacks,
        from_policy: rule_hit.is_some() || aliased,
    }
}
