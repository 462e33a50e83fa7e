//! The native path must give the interpreter's answer: a table of shapes × requests, each
//! evaluated both ways. Plus compile errors, runtime errors and laziness.

use super::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Shapes that must compile to native predicates.
const NATIVE: &[&str] = &[
    r#"headers["x-tier"] == "premium""#,
    r#""premium" == headers["x-tier"]"#,
    r#"headers["x-tier"] != "premium""#,
    r#"headers.accept == "json""#,
    r#"headers["x-tier"] in ["premium", "gold"]"#,
    r#""x-tier" in headers"#,
    r#"has(headers.accept)"#,
    r#"model == "gpt-4o""#,
    r#"model != "gpt-4o""#,
    r#"model.startsWith("gpt-")"#,
    r#"model.endsWith("-mini")"#,
    r#"model.contains("4o")"#,
    r#"model in ["gpt-4o", "claude-sonnet-4-6"]"#,
    r#"model in []"#,
    r#"provider == """#,
    r#"endpoint == "chat""#,
    r#"prompt.contains("secret")"#,
    "usage.budget_pct < 80",
    "usage.budget_pct <= 80",
    "usage.budget_pct > 80.0",
    "usage.budget_pct >= 80u",
    "usage.requests_pct == 0",
    "usage.tokens_pct != 100",
    "80 > usage.budget_pct",
    "usage.budget_pct > -1",
    "prompt_tokens > 16000",
    "prompt_tokens >= 16000.5",
    "prompt_tokens == 0u",
    "16000 < prompt_tokens",
    "prompt_tokens < -0.5",
    "prompt_tokens != 16001",
    "stream",
    "!stream",
    "stream == true",
    "stream != true",
    "false == stream",
    r#"key.team == "ml""#,
    r#"key.team != "security""#,
    r#"key.id == "vk-1""#,
    r#"key.customer == """#,
    r#"key.metadata["env"] == "prod""#,
    r#"key.metadata.env == "prod""#,
    r#""env" in key.metadata"#,
    r#"headers["x-tier"] == "premium" && usage.budget_pct < 80"#,
    r#"!(model == "gpt-4o") || stream"#,
    r#"("x-tier" in headers && headers["x-tier"] == "premium") || model.startsWith("claude")"#,
    r#"true && model == "gpt-4o""#,
    r#"!(headers["x-tier"] == "premium")"#,
    r#"headers["x-tier"] == "premium" || usage.budget_pct < 80"#,
    r#"!(stream && (key.team == "ml" || prompt_tokens > 100))"#,
    r#"headers[?"x-tier"].orValue("") == "premium""#,
    r#"headers[?"x-tier"].orValue("free") != "free""#,
    r#"headers[?"x-tier"].orValue("free") in ["free", "premium"]"#,
    r#"headers.?accept.orValue("none").startsWith("js")"#,
    r#"key.metadata[?"env"].orValue("dev") == "prod""#,
    r#"key.metadata.?env.orValue("dev") == "dev""#,
];

/// Mixed or interpreted expressions: the tree must still agree with the interpreter.
const INTERPRETED: &[&str] = &[
    r#"headers["x-tier"] == "premium" && messages.size() > 1"#,
    r#"model.matches("^gpt-4o") || headers.size() == 0"#,
    r#"params.temperature > 0.5"#,
    r#"has(params.max_tokens) && params.max_tokens > 1000"#,
    r#"headers[?"x-tier"].orValue(0) == 0"#,
    r#"headers[?"x-tier"].hasValue()"#,
    r#"messages.exists(m, m.role == "system") && !stream"#,
    r#"now < timestamp("2030-01-01T00:00:00Z")"#,
    r#"prompt.lowerAscii().contains("secret") || prompt_tokens > 16000"#,
    r#"size(model) > 5 && model.startsWith("gpt")"#,
];

fn requests() -> Vec<RequestData> {
    let mut out = Vec::new();
    let models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-6", ""];
    let tiers = [None, Some("premium"), Some("free")];
    let budgets = [0.0, 79.9, 80.0, 80.5, 100.0, f64::NAN];
    let tokens = [0, 16000, 16001, -1];
    let keys = [
        KeyAttrs {
            id: "vk-1".into(),
            team: Some("ml".into()),
            customer: Some("acme".into()),
            metadata: BTreeMap::from([("env".to_string(), "prod".to_string())]),
        },
        KeyAttrs {
            id: "vk-2".into(),
            ..KeyAttrs::default()
        },
    ];
    let mut i = 0usize;
    for model in models {
        for tier in tiers {
            for budget in budgets {
                i += 1;
                let mut r = RequestData {
                    model: model.into(),
                    stream: i % 2 == 0,
                    prompt_tokens: tokens[i % tokens.len()],
                    key: keys[i % keys.len()].clone(),
                    prompt: if i % 3 == 0 { "my SECRET" } else { "hello" }.into(),
                    ..RequestData::default()
                };
                r.usage = UsagePct {
                    budget_pct: budget,
                    requests_pct: if i % 4 == 0 { 0.0 } else { 50.0 },
                    tokens_pct: if i % 5 == 0 { 100.0 } else { 1.0 },
                };
                if let Some(t) = tier {
                    r.headers.insert("x-tier".into(), t.into());
                }
                if i % 3 == 1 {
                    r.headers.insert("accept".into(), "json".into());
                }
                if i % 2 == 1 {
                    r.params
                        .insert("temperature".into(), serde_json::json!(0.7));
                    r.params
                        .insert("max_tokens".into(), serde_json::json!(2048));
                }
                for n in 0..(i % 3) {
                    let role = if n == 0 { "system" } else { "user" };
                    r.messages.push((role.into(), format!("message {n}")));
                }
                out.push(r);
            }
        }
    }
    out
}

fn assert_agrees(src: &str, expect_native: bool) {
    let e = Expr::compile(src).unwrap_or_else(|err| panic!("{src}: {err}"));
    assert_eq!(e.is_native(), expect_native, "is_native for {src}");
    let (mut oks, mut errs) = (0, 0);
    for req in requests() {
        let b = Bindings::new(&req);
        let native = e.eval(&b);
        let interp = e.eval_interpreted(&b);
        match (&native, &interp) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{src} on {req:?}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{src}: tree {native:?} vs interpreter {interp:?} on {req:?}"),
        }
        if interp.is_ok() {
            oks += 1
        } else {
            errs += 1
        }
    }
    assert!(oks > 0, "{src} never evaluated ({errs} errors)");
}

#[test]
fn native_shapes_agree_with_the_interpreter() {
    for src in NATIVE {
        assert_agrees(src, true);
    }
}

#[test]
fn mixed_and_interpreted_expressions_agree_with_the_interpreter() {
    for src in INTERPRETED {
        assert_agrees(src, false);
    }
}

#[test]
fn missing_header_is_an_error_not_false() {
    let e = Expr::compile(r#"headers["x-tier"] == "premium""#).unwrap();
    let req = RequestData::default();
    assert_eq!(
        e.eval_view(&req),
        Err(EvalError::NoSuchKey("x-tier".into()))
    );
    // ... and `false && error` is false, natively too.
    let e = Expr::compile(r#"stream && headers["x-tier"] == "premium""#).unwrap();
    assert_eq!(e.eval_view(&req), Ok(false));
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let err = Expr::compile("model == ").unwrap_err();
    assert_eq!((err.line, err.column), (1, 10));
    assert!(err.message.contains("Syntax error"), "{err}");
    let err = Expr::compile("model == 'a' &&\n  headers['x'] = 1").unwrap_err();
    assert_eq!(err.line, 2);
    assert!(err.to_string().starts_with("2:16: "), "{err}");
}

#[test]
fn non_bool_results_and_unavailable_variables_are_errors() {
    let req = RequestData::default();
    let e = Expr::compile("model").unwrap();
    assert!(matches!(e.eval_view(&req), Err(EvalError::NotBool(t)) if t == "string"));
    // `response` exists only at the output stage.
    let e = Expr::compile(r#"response.content.contains("x")"#).unwrap();
    assert!(matches!(e.eval_view(&req), Err(EvalError::Cel(_))));
    let with_response = RequestData {
        response: Some(ResponseData {
            content: "xyz".into(),
            ..ResponseData::default()
        }),
        ..RequestData::default()
    };
    assert_eq!(e.eval_view(&with_response), Ok(true));
    let e = Expr::compile(r#"tool.name == "read_file" && tool.arguments.path == "/etc""#).unwrap();
    let with_tool = RequestData {
        tool: Some(ToolData {
            server: "fs".into(),
            name: "read_file".into(),
            arguments: serde_json::json!({"path": "/etc"}),
        }),
        ..RequestData::default()
    };
    assert_eq!(e.eval_view(&with_tool), Ok(true));
    assert!(e.eval_view(&req).is_err());
}

#[test]
fn extensions_and_optional_syntax_are_available() {
    let req = RequestData {
        prompt: "Hello".into(),
        ..RequestData::default()
    };
    for src in [
        r#"prompt.lowerAscii() == "hello""#,
        r#"headers[?"x"].orValue("none") == "none""#,
        "math.greatest(1, 2) == 2",
        "[3, 1].sort() == [1, 3]",
    ] {
        let e = Expr::compile(src).unwrap_or_else(|err| panic!("{src}: {err}"));
        assert_eq!(e.eval_view(&req), Ok(true), "{src}");
    }
}

#[test]
fn constant_expressions_fold_at_compile_time() {
    let e = Expr::compile(r#"1 < 2 && model == "a""#).unwrap();
    assert!(e.is_native());
    assert_eq!(e.vars(), Vars::of(Var::Model));
    let e = Expr::compile(r#"false && messages.size() > 1"#).unwrap();
    assert!(e.is_native() && e.vars().is_empty());
}

/// Counts the calls a view receives, to show that only what is read gets built.
#[derive(Default)]
struct Counting {
    inner: RequestData,
    headers: AtomicUsize,
    messages: AtomicUsize,
    tokens: AtomicUsize,
}

impl RequestView for Counting {
    fn model(&self) -> &str {
        self.inner.model()
    }
    fn provider(&self) -> &str {
        self.inner.provider()
    }
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }
    fn stream(&self) -> bool {
        self.inner.stream()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.inner.header(name)
    }
    fn visit_headers<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s str)) {
        self.headers.fetch_add(1, Ordering::Relaxed);
        self.inner.visit_headers(f)
    }
    fn visit_params<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s serde_json::Value)) {
        self.inner.visit_params(f)
    }
    fn visit_messages<'s>(&'s self, f: &mut dyn FnMut(&'s str, &'s str)) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.inner.visit_messages(f)
    }
    fn prompt(&self) -> &str {
        self.inner.prompt()
    }
    fn prompt_tokens(&self) -> i64 {
        self.tokens.fetch_add(1, Ordering::Relaxed);
        self.inner.prompt_tokens()
    }
    fn key(&self) -> &KeyAttrs {
        self.inner.key()
    }
    fn usage(&self) -> UsagePct {
        self.inner.usage()
    }
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.now()
    }
}

#[test]
fn variables_are_built_lazily_and_once_per_request() {
    let mut view = Counting::default();
    view.inner.headers.insert("x-tier".into(), "premium".into());
    view.inner.messages.push(("user".into(), "hi".into()));
    let b = Bindings::new(&view);

    // Native: reads one header, never converts the map.
    let native = Expr::compile(r#"headers["x-tier"] == "premium""#).unwrap();
    assert_eq!(native.eval(&b), Ok(true));
    assert_eq!(view.headers.load(Ordering::Relaxed), 0);

    // Short-circuit: the interpreted leaf (and `messages`) is never reached.
    let mixed = Expr::compile(r#"headers["x-tier"] == "free" && messages.size() > 0"#).unwrap();
    assert_eq!(mixed.eval(&b), Ok(false));
    assert_eq!(view.messages.load(Ordering::Relaxed), 0);

    // Interpreted: `messages` converted once, however many expressions read it.
    let interp = Expr::compile("messages.size() > 0 && messages[0].role == 'user'").unwrap();
    for _ in 0..3 {
        assert_eq!(interp.eval(&b), Ok(true));
    }
    assert_eq!(view.messages.load(Ordering::Relaxed), 1);
    assert_eq!(view.tokens.load(Ordering::Relaxed), 0);
}
