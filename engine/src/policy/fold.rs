//! Partial evaluation against a key. A key's `id`, `team`, `customer` and `metadata` are known
//! when the plan is compiled, so every leaf that reads nothing else is decided then: rules that
//! can never match a key drop out of its list and always-true conjuncts disappear, leaving the
//! hot path only what depends on the request.

use super::native::Node;
use super::vars::{Var, Vars};
use super::view::{Bindings, KeyAttrs, RequestView, UsagePct};
use super::{eval_node, Expr};
use chrono::{DateTime, Utc};

/// The outcome of [`Expr::fold`] for one key.
#[derive(Debug, Clone)]
pub enum Folded {
    /// True for every request made with this key.
    Always,
    /// False for every request made with this key.
    Never,
    /// Still depends on the request: the residual expression, valid only for this key.
    Depends(Expr),
}

impl Folded {
    pub fn is_always(&self) -> bool {
        matches!(self, Folded::Always)
    }

    pub fn is_never(&self) -> bool {
        matches!(self, Folded::Never)
    }
}

impl Expr {
    /// Folds every leaf that reads only `key.*` to true/false for `key`. A leaf that errors for
    /// this key (`key.metadata["env"]` on a key without `env`) is kept as is, so the runtime
    /// still sees and counts the error — unless CEL's logic makes it irrelevant
    /// (`false && error` is false).
    pub fn fold(&self, key: &KeyAttrs) -> Folded {
        let root = match &*self.root {
            Node::Const(true) => return Folded::Always,
            Node::Const(false) => return Folded::Never,
            _ if !self.vars.contains(Var::Key) => return Folded::Depends(self.clone()),
            root => root,
        };
        let view = KeyOnly(key);
        let bindings = Bindings::new(&view);
        let key_only = Vars::of(Var::Key);
        let residual = simplify(root, &mut |leaf| {
            if leaf.vars().is_subset_of(key_only) {
                eval_node(leaf, leaf.has_cel(), &bindings).ok()
            } else {
                None
            }
        });
        match residual {
            Node::Const(true) => Folded::Always,
            Node::Const(false) => Folded::Never,
            residual => Folded::Depends(Expr::from_parts(
                self.source.clone(),
                self.ast.clone(),
                residual,
            )),
        }
    }
}

/// Rebuilds `node` with the leaves `decide` can answer replaced by constants, and constants
/// propagated through `!`, `&&` and `||`.
pub(crate) fn simplify(node: &Node, decide: &mut dyn FnMut(&Node) -> Option<bool>) -> Node {
    match node {
        Node::Const(v) => Node::Const(*v),
        Node::Pred(_) | Node::Cel(_) => match decide(node) {
            Some(v) => Node::Const(v),
            None => node.clone(),
        },
        Node::Not(child) => match simplify(child, decide) {
            Node::Const(v) => Node::Const(!v),
            child => Node::Not(Box::new(child)),
        },
        Node::And(children) => junction(true, children, decide),
        Node::Or(children) => junction(false, children, decide),
    }
}

fn junction(and: bool, children: &[Node], decide: &mut dyn FnMut(&Node) -> Option<bool>) -> Node {
    // `and`: a false child decides the whole; true children drop out. `or`: the reverse.
    let mut kept = Vec::with_capacity(children.len());
    for child in children {
        match simplify(child, decide) {
            Node::Const(v) if v != and => return Node::Const(v),
            Node::Const(_) => {}
            child => kept.push(child),
        }
    }
    match kept.len() {
        0 => Node::Const(and),
        1 => kept.pop().unwrap_or(Node::Const(and)),
        _ => Node::junction(and, kept),
    }
}

/// A view with only the key: the leaves evaluated through it read nothing else.
pub(crate) struct KeyOnly<'k>(pub(crate) &'k KeyAttrs);

impl RequestView for KeyOnly<'_> {
    fn model(&self) -> &str {
        ""
    }
    fn provider(&self) -> &str {
        ""
    }
    fn endpoint(&self) -> &str {
        ""
    }
    fn stream(&self) -> bool {
        false
    }
    fn header(&self, _: &str) -> Option<&str> {
        None
    }
    fn visit_headers<'s>(&'s self, _: &mut dyn FnMut(&'s str, &'s str)) {}
    fn visit_params<'s>(&'s self, _: &mut dyn FnMut(&'s str, &'s serde_json::Value)) {}
    fn visit_messages<'s>(&'s self, _: &mut dyn FnMut(&'s str, &'s str)) {}
    fn prompt(&self) -> &str {
        ""
    }
    fn prompt_tokens(&self) -> i64 {
        0
    }
    fn key(&self) -> &KeyAttrs {
        self.0
    }
    fn usage(&self) -> UsagePct {
        UsagePct::default()
    }
    fn now(&self) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RequestData;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn key(id: &str, team: Option<&str>, meta: &[(&str, &str)]) -> KeyAttrs {
        KeyAttrs {
            id: id.into(),
            team: team.map(Arc::from),
            customer: None,
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn fold(src: &str, key: &KeyAttrs) -> Folded {
        Expr::compile(src).unwrap().fold(key)
    }

    #[test]
    fn key_only_conditions_fold_to_constants() {
        let ml = key("vk-ml", Some("ml"), &[("env", "prod")]);
        let other = key("vk-x", None, &[]);
        assert!(fold(r#"key.team == "ml""#, &ml).is_always());
        assert!(fold(r#"key.team == "ml""#, &other).is_never());
        assert!(fold(r#"key.team != "security""#, &other).is_always());
        assert!(fold(r#"key.id in ["vk-ml", "vk-ops"]"#, &ml).is_always());
        assert!(fold(r#"key.metadata["env"] == "prod""#, &ml).is_always());
        // Interpreted key-only leaves fold too.
        assert!(fold(r#"key.metadata.exists(k, k == "env")"#, &ml).is_always());
        assert!(fold(r#"size(key.id) > 100"#, &ml).is_never());
    }

    #[test]
    fn conjuncts_fold_away_and_leave_a_smaller_residual() {
        let ml = key("vk-ml", Some("ml"), &[]);
        let src = r#"key.team == "ml" && headers["x-tier"] == "premium""#;
        let Folded::Depends(residual) = fold(src, &ml) else {
            panic!("expected a residual")
        };
        assert_eq!(residual.vars(), Vars::of(Var::Headers));
        assert!(residual.is_native());
        let mut req = RequestData {
            key: ml.clone(),
            ..RequestData::default()
        };
        req.headers.insert("x-tier".into(), "premium".into());
        assert_eq!(residual.eval_view(&req), Ok(true));

        // A false conjunct decides the rule for this key, whatever the request.
        assert!(fold(src, &key("vk-2", Some("ops"), &[])).is_never());
        // A true disjunct too.
        let src = r#"key.team == "ml" || messages.size() > 10"#;
        assert!(fold(src, &ml).is_always());
        let Folded::Depends(residual) = fold(src, &key("vk-2", None, &[])) else {
            panic!("expected a residual")
        };
        assert_eq!(residual.vars(), Vars::of(Var::Messages));
    }

    #[test]
    fn errors_are_kept_for_the_runtime_unless_logic_makes_them_irrelevant() {
        let no_env = key("vk", None, &[]);
        // Missing metadata key: the error stays, so it is still counted at runtime.
        let Folded::Depends(residual) = fold(r#"key.metadata["env"] == "prod""#, &no_env) else {
            panic!("expected the erroring leaf to remain")
        };
        assert!(residual.eval_view(&RequestData::default()).is_err());
        // `false && error` is false.
        let src = r#"key.metadata["env"] == "prod" && key.team == "ml""#;
        assert!(fold(src, &no_env).is_never());
    }

    #[test]
    fn expressions_without_key_are_returned_unchanged() {
        let e = Expr::compile(r#"model == "a""#).unwrap();
        let Folded::Depends(same) = e.fold(&KeyAttrs::default()) else {
            panic!()
        };
        assert_eq!(same.source(), e.source());
        assert!(fold("1 < 2", &KeyAttrs::default()).is_always());
    }

    #[test]
    fn residual_agrees_with_the_interpreter_for_that_key() {
        let keys = [
            key("vk-ml", Some("ml"), &[("env", "prod")]),
            key("vk-ops", Some("ops"), &[("env", "dev")]),
            key("vk-none", None, &[]),
        ];
        let sources = [
            r#"(key.team == "ml" || key.metadata["env"] == "dev") && model.startsWith("gpt")"#,
            r#"!(key.team == "ops") && (stream || usage.budget_pct > 50.0)"#,
            r#"key.id == "vk-none" || (key.team == "ml" && prompt_tokens > 100)"#,
            r#"key.metadata["env"] == "prod" || model == "gpt-4o""#,
        ];
        for src in sources {
            let e = Expr::compile(src).unwrap();
            for k in &keys {
                for (model, stream, budget, tokens) in
                    [("gpt-4o", true, 10.0, 50), ("claude", false, 90.0, 500)]
                {
                    let req = RequestData {
                        key: k.clone(),
                        model: model.into(),
                        stream,
                        usage: UsagePct {
                            budget_pct: budget,
                            ..UsagePct::default()
                        },
                        prompt_tokens: tokens,
                        ..RequestData::default()
                    };
                    let b = Bindings::new(&req);
                    let want = e.eval_interpreted(&b);
                    // Never covers errors too: both mean "does not match".
                    let got = match e.fold(k) {
                        Folded::Always => true,
                        Folded::Never => false,
                        Folded::Depends(r) => {
                            let got = r.eval(&b);
                            assert_eq!(got.is_err(), want.is_err(), "{src} {k:?}");
                            got.unwrap_or(false)
                        }
                    };
                    assert_eq!(got, want.clone().unwrap_or(false), "{src} {k:?}");
                }
            }
        }
    }
}
