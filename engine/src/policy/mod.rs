//! CEL conditions (SPEC §6): compiled once, analysed for the variables they read, evaluated
//! natively where the shape allows, and partially evaluated against a key's static attributes.
//!
//! ```text
//! Expr::compile(src) ─ parse (one shared stdlib Env) ─ check names ─ lower to a Node tree
//!   Node: &&/||/! over native predicates and interpreted CEL leaves
//! expr.fold(&key)    ─ key-only leaves become true/false ─ Always | Never | Depends(residual)
//! expr.eval(&bindings) ─ native leaves read the RequestView directly; CEL leaves resolve
//!                        variables lazily through Bindings (built once per request)
//! ```
//!
//! Semantics are CEL's, including errors: a missing map key (`headers["x"]` without that
//! header) is an error, not false. Write `"x" in headers && headers["x"] == "y"`, or
//! `headers[?"x"].orValue("") == "y"` (optional syntax is enabled). A runtime error is returned
//! as `Err(EvalError)`; callers treat it as "no match" and count it.

mod fold;
mod native;
mod vars;
mod view;

#[cfg(test)]
mod tests;

pub use fold::Folded;
pub use vars::{Var, Vars};
pub use view::{
    Bindings, KeyAttrs, RequestData, RequestView, ResponseAttrs, ResponseData, ToolAttrs, ToolData,
    UsagePct,
};

use cel::common::ast::IdedExpr;
use cel::{Context, Env};
use native::Node;
use std::fmt;
use std::sync::{Arc, LazyLock};

/// The one CEL environment, for compiling and running alike: building the standard library
/// costs ~20 µs, so it is built once and shared (`Context::with_env` is then ~12 ns).
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    // Deterministic registrations of the crate's own extensions; covered by the tests.
    env.add_extension(cel::extensions::strings)
        .expect("CEL strings extension");
    env.add_extension(cel::extensions::lists)
        .expect("CEL lists extension");
    env.add_extension(cel::extensions::math)
        .expect("CEL math extension");
    Arc::new(env)
});

/// A compile error, positioned within the expression's own text (1-based); the config compiler
/// adds the position of the expression in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct PolicyError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Why an expression could not be evaluated for one request. The rule then does not match.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("no such key: {0}")]
    NoSuchKey(Arc<str>),
    #[error("values are not comparable")]
    NotComparable,
    #[error("condition evaluated to {0}, not bool")]
    NotBool(String),
    #[error("{0}")]
    Cel(cel::ExecutionError),
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// A compiled CEL condition. Cheap to clone (reference-counted parts).
#[derive(Clone)]
pub struct Expr {
    source: Arc<str>,
    /// The whole expression as parsed, for [`Expr::eval_interpreted`].
    ast: Arc<IdedExpr>,
    root: Arc<Node>,
    vars: Vars,
    has_cel: bool,
}

impl Expr {
    /// Parses and checks `source`: syntax, known variables and fields, lower-case header names.
    pub fn compile(source: &str) -> Result<Expr, PolicyError> {
        let (ast, info) = ENV
            .parser()
            .parse_with_source_info(source)
            .map_err(|errors| {
                let first = errors.errors.first();
                let (line, column) = first.map_or((1, 1), |e| (e.pos.0, e.pos.1));
                let message = errors
                    .errors
                    .iter()
                    .map(|e| e.msg.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                PolicyError {
                    line: line.max(1) as u32,
                    column: column.max(1) as u32,
                    message,
                }
            })?;
        vars::analyze(&ast, Some(&info))?;
        let nothing = KeyAttrs::default();
        let view = fold::KeyOnly(&nothing);
        let bindings = Bindings::new(&view);
        let root = fold::simplify(&native::lower(&ast), &mut |leaf| {
            // Leaves that read nothing (`1 < 2`) are constants.
            if leaf.vars().is_empty() {
                eval_node(leaf, leaf.has_cel(), &bindings).ok()
            } else {
                None
            }
        });
        Ok(Expr::from_parts(source.into(), Arc::new(ast), root))
    }

    fn from_parts(source: Arc<str>, ast: Arc<IdedExpr>, root: Node) -> Expr {
        Expr {
            source,
            ast,
            vars: root.vars(),
            has_cel: root.has_cel(),
            root: Arc::new(root),
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables evaluation may read; after [`Expr::fold`], those of the residual.
    pub fn vars(&self) -> Vars {
        self.vars
    }

    /// True when evaluation never enters the CEL interpreter.
    pub fn is_native(&self) -> bool {
        !self.has_cel
    }

    /// Evaluates against one request's bindings.
    pub fn eval(&self, b: &Bindings<'_>) -> Result<bool, EvalError> {
        eval_node(&self.root, self.has_cel, b)
    }

    /// Evaluates against a view directly; when several expressions run for the same request,
    /// share one [`Bindings`] instead so variables are converted once.
    pub fn eval_view(&self, view: &dyn RequestView) -> Result<bool, EvalError> {
        self.eval(&Bindings::new(view))
    }

    /// Evaluates the whole original expression in the CEL interpreter, bypassing the native
    /// tree and any folding: the reference the native path is tested against. After
    /// [`Expr::fold`] it agrees with [`Expr::eval`] for requests made with that key.
    pub fn eval_interpreted(&self, b: &Bindings<'_>) -> Result<bool, EvalError> {
        let mut ctx = Context::with_env(Arc::clone(&ENV));
        ctx.set_variable_resolver(b);
        native::interpret(&self.ast, &ctx)
    }
}

/// Evaluates a tree, building an interpreter context only if it has CEL leaves.
fn eval_node(node: &Node, has_cel: bool, b: &Bindings<'_>) -> Result<bool, EvalError> {
    if has_cel {
        let mut ctx = Context::with_env(Arc::clone(&ENV));
        ctx.set_variable_resolver(b);
        node.eval(b, Some(&ctx))
    } else {
        node.eval(b, None)
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expr")
            .field("source", &self.source)
            .field("vars", &self.vars)
            .field("native", &!self.has_cel)
            .finish()
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}
