//! Which request variables (SPEC §6) an expression reads, found by walking the CEL AST once at
//! compile time, so the hot path builds only those.

use super::PolicyError;
use cel::common::ast::{operators, EntryExpr, Expr as Ast, IdedExpr, LiteralValue, SourceInfo};
use std::fmt;

/// One top-level CEL variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Var {
    Model,
    Provider,
    Endpoint,
    Stream,
    Headers,
    Params,
    Messages,
    Prompt,
    PromptTokens,
    Key,
    Usage,
    Now,
    Response,
    Tool,
}

impl Var {
    pub const COUNT: usize = 14;
    pub const ALL: [Var; Var::COUNT] = [
        Var::Model,
        Var::Provider,
        Var::Endpoint,
        Var::Stream,
        Var::Headers,
        Var::Params,
        Var::Messages,
        Var::Prompt,
        Var::PromptTokens,
        Var::Key,
        Var::Usage,
        Var::Now,
        Var::Response,
        Var::Tool,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Var::Model => "model",
            Var::Provider => "provider",
            Var::Endpoint => "endpoint",
            Var::Stream => "stream",
            Var::Headers => "headers",
            Var::Params => "params",
            Var::Messages => "messages",
            Var::Prompt => "prompt",
            Var::PromptTokens => "prompt_tokens",
            Var::Key => "key",
            Var::Usage => "usage",
            Var::Now => "now",
            Var::Response => "response",
            Var::Tool => "tool",
        }
    }

    pub fn from_name(name: &str) -> Option<Var> {
        Some(match name {
            "model" => Var::Model,
            "provider" => Var::Provider,
            "endpoint" => Var::Endpoint,
            "stream" => Var::Stream,
            "headers" => Var::Headers,
            "params" => Var::Params,
            "messages" => Var::Messages,
            "prompt" => Var::Prompt,
            "prompt_tokens" => Var::PromptTokens,
            "key" => Var::Key,
            "usage" => Var::Usage,
            "now" => Var::Now,
            "response" => Var::Response,
            "tool" => Var::Tool,
            _ => return None,
        })
    }

    /// The fields of the struct-like variables, so a typo such as `usage.budget_percent` is a
    /// compile error rather than a rule that silently never matches. `None`: not a struct.
    pub(crate) fn fields(self) -> Option<&'static [&'static str]> {
        match self {
            Var::Key => Some(&["id", "team", "customer", "metadata"]),
            Var::Usage => Some(&["budget_pct", "requests_pct", "tokens_pct"]),
            Var::Response => Some(&[
                "content",
                "finish_reason",
                "prompt_tokens",
                "completion_tokens",
                "provider",
                "model",
            ]),
            Var::Tool => Some(&["server", "name", "arguments"]),
            _ => None,
        }
    }
}

/// A set of [`Var`]s as a bitset: `Copy`, compared and unioned in one instruction.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Vars(u16);

impl Vars {
    pub const NONE: Vars = Vars(0);

    pub const fn of(var: Var) -> Vars {
        Vars(1 << var as u8)
    }

    pub const fn with(self, var: Var) -> Vars {
        Vars(self.0 | 1 << var as u8)
    }

    pub const fn union(self, other: Vars) -> Vars {
        Vars(self.0 | other.0)
    }

    pub const fn contains(self, var: Var) -> bool {
        self.0 & (1 << var as u8) != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn is_subset_of(self, other: Vars) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Var> {
        Var::ALL.into_iter().filter(move |v| self.contains(*v))
    }
}

impl std::ops::BitOr for Vars {
    type Output = Vars;
    fn bitor(self, rhs: Vars) -> Vars {
        self.union(rhs)
    }
}

impl fmt::Debug for Vars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Var::name)).finish()
    }
}

/// Type names an expression may mention as identifiers (`type(x) == string`).
const TYPE_NAMES: &[&str] = &[
    "bool",
    "bytes",
    "double",
    "duration",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "timestamp",
    "type",
    "uint",
];

/// The variables `ast` reads. With `source`, also rejects what can never work: an unknown
/// identifier, an unknown field of a struct-like variable, or a header name that is not
/// lower-case (headers are keyed lower-case, so `headers["X-Tier"]` could never match).
pub(crate) fn analyze(ast: &IdedExpr, source: Option<&SourceInfo>) -> Result<Vars, PolicyError> {
    let mut walk = Walk {
        vars: Vars::NONE,
        bound: Vec::new(),
        source,
        error: None,
    };
    walk.expr(ast);
    match walk.error {
        Some(e) => Err(e),
        None => Ok(walk.vars),
    }
}

/// The variables `ast` reads, without validation: for sub-expressions of an already checked one.
pub(crate) fn vars_of(ast: &IdedExpr) -> Vars {
    let mut walk = Walk {
        vars: Vars::NONE,
        bound: Vec::new(),
        source: None,
        error: None,
    };
    walk.expr(ast);
    walk.vars
}

struct Walk<'a> {
    vars: Vars,
    /// Names bound by enclosing comprehensions (`messages.exists(m, ...)` binds `m`), which
    /// shadow variables of the same name.
    bound: Vec<&'a str>,
    source: Option<&'a SourceInfo>,
    error: Option<PolicyError>,
}

impl<'a> Walk<'a> {
    /// The variable `ast` names, if it is an identifier that is not shadowed.
    fn var(&self, ast: &IdedExpr) -> Option<Var> {
        match &ast.expr {
            Ast::Ident(name) if !self.bound.contains(&name.as_str()) => Var::from_name(name),
            _ => None,
        }
    }

    fn fail(&mut self, id: u64, message: String) {
        let Some(source) = self.source else { return };
        if self.error.is_some() {
            return;
        }
        let (line, column) = source
            .offset_for(id)
            .map(|(start, _)| line_col(&source.source, start as usize))
            .unwrap_or((1, 1));
        self.error = Some(PolicyError {
            line,
            column,
            message,
        });
    }

    fn expr(&mut self, ast: &'a IdedExpr) {
        match &ast.expr {
            Ast::Ident(name) => {
                if self.bound.contains(&name.as_str()) {
                    return;
                }
                match Var::from_name(name) {
                    Some(var) => self.vars = self.vars.with(var),
                    None if TYPE_NAMES.contains(&name.as_str()) => {}
                    None => self.fail(ast.id, unknown_variable(name)),
                }
            }
            Ast::Select(select) => {
                if let Some(var) = self.var(&select.operand) {
                    if let Some(fields) = var.fields() {
                        if !fields.contains(&select.field.as_str()) {
                            let message = format!(
                                "`{}` has no field `{}` (fields: {})",
                                var.name(),
                                select.field,
                                fields.join(", ")
                            );
                            self.fail(ast.id, message);
                        }
                    }
                }
                self.expr(&select.operand);
            }
            Ast::Call(call) => {
                self.check_header_name(ast.id, &call.func_name, &call.args);
                if let Some(target) = &call.target {
                    self.expr(target);
                }
                for arg in &call.args {
                    self.expr(arg);
                }
            }
            Ast::Comprehension(c) => {
                self.expr(&c.iter_range);
                self.expr(&c.accu_init);
                let depth = self.bound.len();
                self.bound.push(&c.iter_var);
                if let Some(v2) = &c.iter_var2 {
                    self.bound.push(v2);
                }
                self.bound.push(&c.accu_var);
                self.expr(&c.loop_cond);
                self.expr(&c.loop_step);
                self.expr(&c.result);
                self.bound.truncate(depth);
            }
            Ast::List(list) => list.elements.iter().for_each(|e| self.expr(e)),
            Ast::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(e) = &entry.expr {
                        self.expr(&e.key);
                        self.expr(&e.value);
                    }
                }
            }
            Ast::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.expr(&f.value);
                    }
                }
            }
            Ast::Literal(_) | Ast::Unspecified => {}
        }
    }

    /// `headers["X-Tier"]` and `"X-Tier" in headers` can never be true: say so at compile time.
    fn check_header_name(&mut self, id: u64, func: &str, args: &[IdedExpr]) {
        let (map, name) = match (func, args) {
            (operators::INDEX | operators::OPT_INDEX, [map, name]) => (map, name),
            (operators::IN, [name, map]) => (map, name),
            _ => return,
        };
        if self.var(map) != Some(Var::Headers) {
            return;
        }
        if let Ast::Literal(LiteralValue::String(s)) = &name.expr {
            let s = s.inner();
            if s.chars().any(|c| c.is_ascii_uppercase()) {
                let message = format!(
                    "header names are lower-case: write \"{}\" instead of \"{s}\"",
                    s.to_ascii_lowercase()
                );
                self.fail(id, message);
            }
        }
    }
}

fn unknown_variable(name: &str) -> String {
    let known: Vec<&str> = Var::ALL.iter().map(|v| v.name()).collect();
    format!(
        "unknown variable `{name}` (variables: {})",
        known.join(", ")
    )
}

/// 1-based line and column of the `offset`-th character of `source`.
pub(crate) fn line_col(source: &str, offset: usize) -> (u32, u32) {
    let mut line = 1;
    let mut column = 1;
    for c in source.chars().take(offset) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::super::Expr;
    use super::*;

    fn vars(src: &str) -> Vars {
        Expr::compile(src).unwrap().vars()
    }

    #[test]
    fn records_only_the_variables_read() {
        assert_eq!(
            vars(r#"headers["x-tier"] == "premium" && usage.budget_pct < 80"#),
            Vars::of(Var::Headers).with(Var::Usage)
        );
        assert_eq!(vars("prompt_tokens > 10"), Vars::of(Var::PromptTokens));
        assert_eq!(vars("true"), Vars::NONE);
        assert_eq!(
            vars("now > timestamp('2026-01-01T00:00:00Z') || tool.name == 'x'"),
            Vars::of(Var::Now).with(Var::Tool)
        );
    }

    #[test]
    fn comprehension_variables_shadow_request_variables() {
        // `model` here is the loop variable, not the request's model.
        assert_eq!(
            vars(r#"messages.exists(model, model.role == "system")"#),
            Vars::of(Var::Messages)
        );
        assert_eq!(
            vars(r#"messages.exists(m, m.content.contains(prompt))"#),
            Vars::of(Var::Messages).with(Var::Prompt)
        );
    }

    #[test]
    fn rejects_unknown_identifiers_fields_and_upper_case_headers() {
        let e = Expr::compile(r#"model == "a" && modle == "b""#).unwrap_err();
        assert_eq!((e.line, e.column), (1, 17));
        assert!(e.message.contains("unknown variable `modle`"), "{e}");

        let e = Expr::compile("usage.budget_percent < 80").unwrap_err();
        assert!(e.message.contains("no field `budget_percent`"), "{e}");
        assert!(e.message.contains("budget_pct"), "{e}");

        let e = Expr::compile(r#"headers["X-Tier"] == "a""#).unwrap_err();
        assert!(e.message.contains(r#""x-tier""#), "{e}");
        let e = Expr::compile(r#""X-Tier" in headers"#).unwrap_err();
        assert!(e.message.contains(r#""x-tier""#), "{e}");

        // Type names are not variables.
        assert!(Expr::compile("type(prompt_tokens) == int").is_ok());
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é x", 2), (1, 3));
    }

    #[test]
    fn bitset_operations() {
        let v = Vars::of(Var::Model) | Vars::of(Var::Key);
        assert!(v.contains(Var::Model) && v.contains(Var::Key) && !v.contains(Var::Now));
        assert!(Vars::of(Var::Key).is_subset_of(v));
        assert!(!v.is_subset_of(Vars::of(Var::Key)));
        assert_eq!(format!("{v:?}"), r#"{"model", "key"}"#);
        assert_eq!(v.iter().count(), 2);
        for var in Var::ALL {
            assert_eq!(Var::from_name(var.name()), Some(var));
        }
    }
}
