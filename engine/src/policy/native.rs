//! The evaluation tree of an expression: `&&`, `||` and `!` over leaves that are either native
//! predicates (common shapes, evaluated with a few comparisons and no allocation) or CEL
//! sub-expressions left to the interpreter.
//!
//! Native leaves give exactly the interpreter's answer, errors included: `headers["x"]` on a
//! missing header is an error (CEL's `NoSuchKey`), not false. Logic follows CEL's commutative
//! error rules — `false && error` is false, `true || error` is true, otherwise an error
//! propagates — which is what lets the tree evaluate native children before interpreted ones.

use super::vars::{vars_of, Var, Vars};
use super::view::{Bindings, RequestView};
use super::EvalError;
use cel::common::ast::{operators, Expr as Ast, IdedExpr, LiteralValue};
use cel::common::types::CelBool;
use cel::{Context, Value};
use std::cmp::Ordering;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(bool),
    Pred(Pred),
    Not(Box<Node>),
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Cel(Arc<CelLeaf>),
}

#[derive(Debug)]
pub(crate) struct CelLeaf {
    pub(crate) ast: IdedExpr,
    pub(crate) vars: Vars,
}

/// A native predicate: one of the shapes users write most.
#[derive(Debug, Clone)]
pub(crate) enum Pred {
    /// `model == "x"`, `headers["x"] != "y"`, `model.startsWith("x")`, `model in ["a", "b"]`.
    Str { src: StrSrc, op: StrOp },
    /// `"x" in headers`, `has(headers.x)`, `"k" in key.metadata`.
    Has { map: MapSrc, name: Arc<str> },
    /// `usage.budget_pct < 80`, `prompt_tokens >= 16000`.
    Num { src: NumSrc, op: CmpOp, lit: Num },
    /// `stream`; `!stream` and `stream == false` are a `Not` around it.
    Stream,
}

#[derive(Debug, Clone)]
pub(crate) enum StrSrc {
    Model,
    Provider,
    Endpoint,
    Prompt,
    KeyId,
    KeyTeam,
    KeyCustomer,
    Header(Arc<str>),
    Meta(Arc<str>),
    /// `headers[?"x"].orValue("d")` / `headers.?x.orValue("d")`: the header, or `d`.
    HeaderOr(Arc<str>, Box<str>),
    /// `key.metadata[?"k"].orValue("d")`.
    MetaOr(Arc<str>, Box<str>),
}

#[derive(Debug, Clone)]
pub(crate) enum StrOp {
    Eq(Box<str>),
    Ne(Box<str>),
    StartsWith(Box<str>),
    EndsWith(Box<str>),
    Contains(Box<str>),
    In(Box<[Box<str>]>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapSrc {
    Headers,
    Meta,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumSrc {
    PromptTokens,
    BudgetPct,
    RequestsPct,
    TokensPct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// A CEL number, compared with CEL's cross-type rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i64),
    UInt(u64),
    Double(f64),
}

impl Num {
    /// As cel's `Comparer` impls: int/uint compare exactly, anything with a double compares as
    /// doubles, NaN is incomparable.
    fn cmp(self, other: Num) -> Option<Ordering> {
        use Num::*;
        match (self, other) {
            (Int(a), Int(b)) => Some(a.cmp(&b)),
            (UInt(a), UInt(b)) => Some(a.cmp(&b)),
            (Int(a), UInt(b)) => Some(u64::try_from(a).map_or(Ordering::Less, |a| a.cmp(&b))),
            (UInt(a), Int(b)) => Some(i64::try_from(a).map_or(Ordering::Greater, |a| a.cmp(&b))),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::UInt(u) => u as f64,
            Num::Double(d) => d,
        }
    }
}

impl CmpOp {
    fn flip(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            op => op,
        }
    }

    fn from_func(name: &str) -> Option<CmpOp> {
        Some(match name {
            operators::LESS => CmpOp::Lt,
            operators::LESS_EQUALS => CmpOp::Le,
            operators::GREATER => CmpOp::Gt,
            operators::GREATER_EQUALS => CmpOp::Ge,
            operators::EQUALS => CmpOp::Eq,
            operators::NOT_EQUALS => CmpOp::Ne,
            _ => return None,
        })
    }

    /// `==` on incomparable values is false and `!=` true (cel's `equals`); ordering them is
    /// an error.
    fn apply(self, ord: Option<Ordering>) -> Result<bool, EvalError> {
        let Some(ord) = ord else {
            return match self {
                CmpOp::Eq => Ok(false),
                CmpOp::Ne => Ok(true),
                _ => Err(EvalError::NotComparable),
            };
        };
        Ok(match self {
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Ge => ord != Ordering::Less,
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
        })
    }
}

impl StrSrc {
    fn get<'v>(&'v self, view: &'v dyn RequestView) -> Result<&'v str, EvalError> {
        Ok(match self {
            StrSrc::Model => view.model(),
            StrSrc::Provider => view.provider(),
            StrSrc::Endpoint => view.endpoint(),
            StrSrc::Prompt => view.prompt(),
            StrSrc::KeyId => &view.key().id,
            StrSrc::KeyTeam => view.key().team_str(),
            StrSrc::KeyCustomer => view.key().customer_str(),
            StrSrc::Header(name) => view
                .header(name)
                .ok_or_else(|| EvalError::NoSuchKey(name.clone()))?,
            StrSrc::Meta(name) => view
                .key()
                .metadata
                .get(&**name)
                .ok_or_else(|| EvalError::NoSuchKey(name.clone()))?,
            StrSrc::HeaderOr(name, default) => view.header(name).unwrap_or(default),
            StrSrc::MetaOr(name, default) => view
                .key()
                .metadata
                .get(&**name)
                .map_or(&**default, |v| v.as_str()),
        })
    }

    fn var(&self) -> Var {
        match self {
            StrSrc::Model => Var::Model,
            StrSrc::Provider => Var::Provider,
            StrSrc::Endpoint => Var::Endpoint,
            StrSrc::Prompt => Var::Prompt,
            StrSrc::Header(_) | StrSrc::HeaderOr(..) => Var::Headers,
            StrSrc::KeyId
            | StrSrc::KeyTeam
            | StrSrc::KeyCustomer
            | StrSrc::Meta(_)
            | StrSrc::MetaOr(..) => Var::Key,
        }
    }
}

impl Pred {
    fn eval(&self, view: &dyn RequestView) -> Result<bool, EvalError> {
        match self {
            Pred::Str { src, op } => {
                let s = src.get(view)?;
                Ok(match op {
                    StrOp::Eq(lit) => s == &**lit,
                    StrOp::Ne(lit) => s != &**lit,
                    StrOp::StartsWith(lit) => s.starts_with(&**lit),
                    StrOp::EndsWith(lit) => s.ends_with(&**lit),
                    StrOp::Contains(lit) => s.contains(&**lit),
                    StrOp::In(set) => set.iter().any(|lit| s == &**lit),
                })
            }
            Pred::Has { map, name } => Ok(match map {
                MapSrc::Headers => view.header(name).is_some(),
                MapSrc::Meta => view.key().metadata.contains_key(&**name),
            }),
            Pred::Num { src, op, lit } => {
                let value = match src {
                    NumSrc::PromptTokens => Num::Int(view.prompt_tokens()),
                    NumSrc::BudgetPct => Num::Double(view.usage().budget_pct),
                    NumSrc::RequestsPct => Num::Double(view.usage().requests_pct),
                    NumSrc::TokensPct => Num::Double(view.usage().tokens_pct),
                };
                op.apply(value.cmp(*lit))
            }
            Pred::Stream => Ok(view.stream()),
        }
    }

    fn vars(&self) -> Vars {
        match self {
            Pred::Str { src, .. } => Vars::of(src.var()),
            Pred::Has {
                map: MapSrc::Headers,
                ..
            } => Vars::of(Var::Headers),
            Pred::Has {
                map: MapSrc::Meta, ..
            } => Vars::of(Var::Key),
            Pred::Num { src, .. } => Vars::of(match src {
                NumSrc::PromptTokens => Var::PromptTokens,
                _ => Var::Usage,
            }),
            Pred::Stream => Vars::of(Var::Stream),
        }
    }
}

impl Node {
    /// Evaluates natively, calling the interpreter (with `ctx`) only for `Cel` leaves.
    pub(crate) fn eval(
        &self,
        b: &Bindings<'_>,
        ctx: Option<&Context<'_, '_>>,
    ) -> Result<bool, EvalError> {
        match self {
            Node::Const(v) => Ok(*v),
            Node::Pred(p) => p.eval(b.view),
            Node::Not(n) => n.eval(b, ctx).map(|v| !v),
            Node::And(children) => {
                let mut error = None;
                for c in children.iter() {
                    match c.eval(b, ctx) {
                        Ok(false) => return Ok(false),
                        Ok(true) => {}
                        Err(e) => error = error.or(Some(e)),
                    }
                }
                error.map_or(Ok(true), Err)
            }
            Node::Or(children) => {
                let mut error = None;
                for c in children.iter() {
                    match c.eval(b, ctx) {
                        Ok(true) => return Ok(true),
                        Ok(false) => {}
                        Err(e) => error = error.or(Some(e)),
                    }
                }
                error.map_or(Ok(false), Err)
            }
            Node::Cel(leaf) => match ctx {
                Some(ctx) => interpret(&leaf.ast, ctx),
                // The caller builds a context whenever the tree has a Cel leaf.
                None => Err(EvalError::Internal("no CEL context")),
            },
        }
    }

    pub(crate) fn vars(&self) -> Vars {
        match self {
            Node::Const(_) => Vars::NONE,
            Node::Pred(p) => p.vars(),
            Node::Not(n) => n.vars(),
            Node::And(c) | Node::Or(c) => c.iter().fold(Vars::NONE, |v, n| v | n.vars()),
            Node::Cel(leaf) => leaf.vars,
        }
    }

    pub(crate) fn has_cel(&self) -> bool {
        match self {
            Node::Const(_) | Node::Pred(_) => false,
            Node::Not(n) => n.has_cel(),
            Node::And(c) | Node::Or(c) => c.iter().any(Node::has_cel),
            Node::Cel(_) => true,
        }
    }

    /// Evaluation order within `&&`/`||`: cheap leaves first. Sound because CEL's logic is
    /// commutative (see the module docs).
    fn cost(&self) -> u8 {
        match self {
            Node::Const(_) => 0,
            Node::Pred(_) => 1,
            n if !n.has_cel() => 2,
            _ => 3,
        }
    }

    /// `&&`/`||` of `children`, flattened, sorted cheapest first.
    pub(crate) fn junction(and: bool, mut children: Vec<Node>) -> Node {
        children.sort_by_key(Node::cost);
        if and {
            Node::And(children.into())
        } else {
            Node::Or(children.into())
        }
    }
}

/// Runs the interpreter on one AST; a non-bool result is an error, as CEL requires of a
/// condition.
pub(crate) fn interpret(ast: &IdedExpr, ctx: &Context<'_, '_>) -> Result<bool, EvalError> {
    let value = Value::resolve_val(ast, ctx).map_err(EvalError::Cel)?;
    match value.downcast_ref::<CelBool>() {
        Some(b) => Ok(*b.inner()),
        None => Err(EvalError::NotBool(value.get_type().name().to_owned())),
    }
}

/// Builds the tree for a checked AST.
pub(crate) fn lower(ast: &IdedExpr) -> Node {
    if let Ast::Call(call) = &ast.expr {
        let junction = match call.func_name.as_str() {
            operators::LOGICAL_AND => Some(true),
            operators::LOGICAL_OR => Some(false),
            _ => None,
        };
        if let (Some(and), None, 2) = (junction, &call.target, call.args.len()) {
            let mut children = Vec::new();
            flatten(ast, &call.func_name, &mut children);
            let children: Vec<Node> = children.into_iter().map(lower).collect();
            // A junction with nothing native in it stays one interpreted leaf: one call into
            // the interpreter instead of several.
            if children.iter().all(|c| matches!(c, Node::Cel(_))) {
                return cel_leaf(ast);
            }
            return Node::junction(and, children);
        }
        if call.func_name == operators::LOGICAL_NOT && call.target.is_none() {
            if let [arg] = call.args.as_slice() {
                return match lower(arg) {
                    Node::Cel(_) => cel_leaf(ast),
                    Node::Const(v) => Node::Const(!v),
                    n => Node::Not(Box::new(n)),
                };
            }
        }
    }
    if let Ast::Literal(LiteralValue::Boolean(b)) = &ast.expr {
        return Node::Const(*b.inner());
    }
    match pred(ast) {
        Some(node) => node,
        None => cel_leaf(ast),
    }
}

fn cel_leaf(ast: &IdedExpr) -> Node {
    Node::Cel(Arc::new(CelLeaf {
        ast: ast.clone(),
        vars: vars_of(ast),
    }))
}

/// `a && (b && c)` → `[a, b, c]`.
fn flatten<'a>(ast: &'a IdedExpr, func: &str, out: &mut Vec<&'a IdedExpr>) {
    match &ast.expr {
        Ast::Call(call) if call.func_name == func && call.target.is_none() => {
            call.args.iter().for_each(|a| flatten(a, func, out));
        }
        _ => out.push(ast),
    }
}

/// Recognises the native shapes; `None` leaves the expression to the interpreter.
fn pred(ast: &IdedExpr) -> Option<Node> {
    if ident(ast) == Some("stream") {
        return Some(Node::Pred(Pred::Stream));
    }
    if let Ast::Select(sel) = &ast.expr {
        // `has(headers.x)` is `"x" in headers`.
        if sel.test && ident(&sel.operand) == Some("headers") {
            let name = sel.field.as_str().into();
            return Some(Node::Pred(Pred::Has {
                map: MapSrc::Headers,
                name,
            }));
        }
        return None;
    }
    let Ast::Call(call) = &ast.expr else {
        return None;
    };
    match (&call.target, call.args.as_slice()) {
        (None, [a, b]) => {
            if let Some(op) = CmpOp::from_func(&call.func_name) {
                return comparison(op, a, b).or_else(|| comparison(op.flip(), b, a));
            }
            if call.func_name == operators::IN {
                return membership(a, b);
            }
            None
        }
        (Some(target), [arg]) => {
            let src = str_src(target)?;
            let lit: Box<str> = str_lit(arg)?.into();
            let op = match call.func_name.as_str() {
                "startsWith" => StrOp::StartsWith(lit),
                "endsWith" => StrOp::EndsWith(lit),
                "contains" => StrOp::Contains(lit),
                _ => return None,
            };
            Some(Node::Pred(Pred::Str { src, op }))
        }
        _ => None,
    }
}

/// `<src> <op> <literal>` for strings, numbers and `stream`.
fn comparison(op: CmpOp, a: &IdedExpr, b: &IdedExpr) -> Option<Node> {
    if let (Some(src), Some(lit)) = (str_src(a), str_lit(b)) {
        let op = match op {
            CmpOp::Eq => StrOp::Eq(lit.into()),
            CmpOp::Ne => StrOp::Ne(lit.into()),
            _ => return None,
        };
        return Some(Node::Pred(Pred::Str { src, op }));
    }
    if let (Some(src), Some(lit)) = (num_src(a), num_lit(b)) {
        return Some(Node::Pred(Pred::Num { src, op, lit }));
    }
    if let (Some("stream"), Ast::Literal(LiteralValue::Boolean(v))) = (ident(a), &b.expr) {
        let is_true = match op {
            CmpOp::Eq => *v.inner(),
            CmpOp::Ne => !*v.inner(),
            _ => return None,
        };
        let stream = Node::Pred(Pred::Stream);
        return Some(if is_true {
            stream
        } else {
            Node::Not(Box::new(stream))
        });
    }
    None
}

/// `"x" in headers`, `"k" in key.metadata`, `model in ["a", "b"]`.
fn membership(item: &IdedExpr, container: &IdedExpr) -> Option<Node> {
    if let Some(name) = str_lit(item) {
        let map = if ident(container) == Some("headers") {
            MapSrc::Headers
        } else if is_key_metadata(container) {
            MapSrc::Meta
        } else {
            return None;
        };
        let name = name.into();
        return Some(Node::Pred(Pred::Has { map, name }));
    }
    let src = str_src(item)?;
    let Ast::List(list) = &container.expr else {
        return None;
    };
    if !list.optional_indices.is_empty() {
        return None;
    }
    let set: Option<Vec<Box<str>>> = list
        .elements
        .iter()
        .map(|e| str_lit(e).map(Into::into))
        .collect();
    let op = StrOp::In(set?.into());
    Some(Node::Pred(Pred::Str { src, op }))
}

fn ident(ast: &IdedExpr) -> Option<&str> {
    match &ast.expr {
        Ast::Ident(name) => Some(name),
        _ => None,
    }
}

fn str_lit(ast: &IdedExpr) -> Option<&str> {
    match &ast.expr {
        Ast::Literal(LiteralValue::String(s)) => Some(s.inner()),
        _ => None,
    }
}

fn num_lit(ast: &IdedExpr) -> Option<Num> {
    match &ast.expr {
        Ast::Literal(LiteralValue::Int(i)) => Some(Num::Int(*i.inner())),
        Ast::Literal(LiteralValue::UInt(u)) => Some(Num::UInt(*u.inner())),
        Ast::Literal(LiteralValue::Double(d)) => Some(Num::Double(*d.inner())),
        _ => None,
    }
}

/// `key.metadata`, not under a presence test.
fn is_key_metadata(ast: &IdedExpr) -> bool {
    matches!(&ast.expr, Ast::Select(s) if !s.test && s.field == "metadata" && ident(&s.operand) == Some("key"))
}

/// A string-valued variable: `model`, `key.team`, `headers["x"]`, `headers.x`,
/// `key.metadata["k"]`, ...
fn str_src(ast: &IdedExpr) -> Option<StrSrc> {
    match &ast.expr {
        Ast::Ident(name) => match name.as_str() {
            "model" => Some(StrSrc::Model),
            "provider" => Some(StrSrc::Provider),
            "endpoint" => Some(StrSrc::Endpoint),
            "prompt" => Some(StrSrc::Prompt),
            _ => None,
        },
        Ast::Select(sel) if !sel.test => {
            if ident(&sel.operand) == Some("key") {
                return match sel.field.as_str() {
                    "id" => Some(StrSrc::KeyId),
                    "team" => Some(StrSrc::KeyTeam),
                    "customer" => Some(StrSrc::KeyCustomer),
                    _ => None,
                };
            }
            keyed(&sel.operand, &sel.field)
        }
        Ast::Call(call) if call.func_name == operators::INDEX && call.target.is_none() => {
            match call.args.as_slice() {
                [map, name] => keyed(map, str_lit(name)?),
                _ => None,
            }
        }
        // The optional syntax the README recommends for headers that may be absent.
        Ast::Call(call) if call.func_name == "orValue" => {
            let (Some(target), [default]) = (&call.target, call.args.as_slice()) else {
                return None;
            };
            let default: Box<str> = str_lit(default)?.into();
            let Ast::Call(opt) = &target.expr else {
                return None;
            };
            let optional =
                opt.func_name == operators::OPT_INDEX || opt.func_name == operators::OPT_SELECT;
            match (optional, &opt.target, opt.args.as_slice()) {
                (true, None, [map, name]) => match keyed(map, str_lit(name)?)? {
                    StrSrc::Header(name) => Some(StrSrc::HeaderOr(name, default)),
                    StrSrc::Meta(name) => Some(StrSrc::MetaOr(name, default)),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}

/// `map[name]` where `map` is `headers` or `key.metadata`.
fn keyed(map: &IdedExpr, name: &str) -> Option<StrSrc> {
    if ident(map) == Some("headers") {
        Some(StrSrc::Header(name.into()))
    } else if is_key_metadata(map) {
        Some(StrSrc::Meta(name.into()))
    } else {
        None
    }
}

fn num_src(ast: &IdedExpr) -> Option<NumSrc> {
    match &ast.expr {
        Ast::Ident(name) if name == "prompt_tokens" => Some(NumSrc::PromptTokens),
        Ast::Select(sel) if !sel.test && ident(&sel.operand) == Some("usage") => {
            match sel.field.as_str() {
                "budget_pct" => Some(NumSrc::BudgetPct),
                "requests_pct" => Some(NumSrc::RequestsPct),
                "tokens_pct" => Some(NumSrc::TokensPct),
                _ => None,
            }
        }
        _ => None,
    }
}
