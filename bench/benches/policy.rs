//! Policy work per request over the full-policy bench config (1,000 keys, 100 routing rules,
//! 5 guardrails, limits on every tier). First the whole decision for one request, step by step
//! as the proxy takes it; then its parts: the key's merged rule list walked with no rule
//! matching, each rule shape of the config evaluated alone (native fast path or CEL
//! interpreter), the input guardrails over a typical chat, and the prompt-token estimate that
//! token limits and budgets need.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use http::{HeaderMap, HeaderValue};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::future::Future;
use std::task::{Context, Poll, Waker};
use tollgate::admission::decide::{choose_route, RouteChoice};
use tollgate::admission::estimate::{chat_prompt_tokens, Usage};
use tollgate::admission::limits::Ledger;
use tollgate::admission::route::check_model;
use tollgate::admission::{auth, guard, messages};
use tollgate::compile::compile;
use tollgate::config::{load_str, ConfigFormat};
use tollgate::plan::{KeyPlan, Plan};
use tollgate::policy::{Expr, RequestData};
use tollgate::proxy::{admit, parse_head, ProxyView, RequestHead, Target};
use tollgate::telemetry::Endpoint;
use tollgate_bench::{generate, secret, Spec};

const NOW: i64 = 1_800_000_000;

const SYSTEM: &str = "You are a helpful assistant for the billing team.";
const USER: &str = "Please summarise the attached invoice dispute in three sentences and \
    suggest a polite reply to the customer, who wrote to us twice last week about a late fee \
    they believe was charged in error after the bank holiday.";

fn plan() -> Plan {
    let text = generate(&Spec::default()).yaml;
    compile(&load_str(&text, "bench.yaml", ConfigFormat::Yaml).expect("parses")).expect("compiles")
}

/// What the proxy shows expressions for an SDK chat request of key `id`.
fn request(plan: &Plan, id: &str) -> RequestData {
    let key = plan.key_by_id(id).expect("key");
    let headers: BTreeMap<String, String> = [
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("user-agent", "OpenAI/Python 1.99.0"),
        ("x-stainless-lang", "python"),
        ("x-stainless-retry-count", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    RequestData {
        model: "gpt-4o-mini".into(),
        headers,
        messages: vec![
            ("system".into(), SYSTEM.into()),
            ("user".into(), USER.into()),
        ],
        prompt: USER.into(),
        prompt_tokens: 60,
        key: key.attrs.clone(),
        usage: key.usage_pct(NOW),
        ..RequestData::default()
    }
}

/// Runs a future that never waits (the memory ledger answers at once) without a runtime.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the memory ledger never waits"),
    }
}

/// One request's whole decision, in the proxy's order: authenticate, parse the body, allowed
/// model, input guardrails (messages parsed, texts checked), routing rules, admission (token
/// estimate, provider and key choice, reserve on every tier), the upstream body; then the
/// settlement with the usage the provider reported.
fn decision(c: &mut Criterion, plan: &Plan) {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("user-agent", "OpenAI/Python 1.99.0"),
        ("x-stainless-lang", "python"),
        ("x-stainless-retry-count", "0"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // vk-00000: every tier has limits, its team, customer and own rules apply, and all five
    // guardrails run on its input.
    let auth = format!("Bearer {}", secret(0));
    headers.insert(
        "authorization",
        HeaderValue::from_str(&auth).expect("header"),
    );
    let now = chrono::DateTime::from_timestamp(NOW, 0).expect("time");
    let mut group = c.benchmark_group("decision_1k_keys_100_rules_5_guardrails");
    // The user's text is new in every request (the tokenizer runs on it); the system prompt
    // is the same in each, as an application's is.
    let cases: [(&str, UserText); 3] = [
        ("short_prompt", |n| {
            format!("What is the capital of France? (#{n})")
        }),
        ("prompt_215_bytes", |n| format!("{USER} #{n}")),
        // The same request again and again: every text's token count is remembered.
        ("prompt_215_bytes_repeated", |_| USER.to_string()),
    ];
    // The policy part alone (guardrails and rules), on a request already authenticated and
    // parsed.
    let key = auth::authenticate(plan, &headers, NOW).expect("known key");
    let body = chat_body("What is the capital of France?");
    let head = parse_head(&body, Endpoint::Chat).expect("parses");
    group.bench_function("short_prompt_guardrails_and_rules_only", |b| {
        b.iter(|| {
            let view = ProxyView::new(&head, &headers, &body, "chat", key, now);
            policy_decision(plan, key, black_box(&head), &view).from_policy
        })
    });
    for (name, user) in cases {
        let mut n = 0u64;
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    n += 1;
                    chat_body(&user(n))
                },
                |body| decide_one(plan, &headers, &body, now),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// The user's message of the `n`th request of a case.
type UserText = fn(u64) -> String;

fn chat_body(user: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
            "temperature": 0.2,
            "max_tokens": 256
        })
        .to_string(),
    )
}

/// The policy part of the decision: input guardrails over the messages' texts, then the walk
/// over the key's merged rule list.
fn policy_decision<'p: 'r, 'r>(
    plan: &'p Plan,
    key: &'p KeyPlan,
    head: &'r RequestHead<'r>,
    view: &ProxyView<'_>,
) -> RouteChoice<'p, 'r> {
    let raw = head.messages.expect("messages");
    let msgs: serde_json::Value = serde_json::from_str(raw.get()).expect("json");
    let mut texts = messages::texts(&msgs);
    let original = texts.clone();
    let report = guard::check(
        &key.input_guardrails,
        view,
        &mut texts,
        &mut || 0.5,
        &mut Vec::new(),
    );
    assert!(report.blocked_by.is_none() && texts == original);
    let choice = choose_route(
        plan,
        key,
        &head.model,
        &head.fallbacks,
        view,
        7,
        &mut |_, _| {},
    );
    assert!(choice.rule.is_none());
    choice
}

fn decide_one(
    plan: &Plan,
    headers: &HeaderMap,
    body: &Bytes,
    now: chrono::DateTime<chrono::Utc>,
) -> Bytes {
    let key = auth::authenticate(plan, headers, NOW).expect("known key");
    let head = parse_head(body, Endpoint::Chat).expect("parses");
    let view = ProxyView::new(&head, headers, body, "chat", key, now);
    check_model(plan, key, &head.model).expect("allowed");
    let choice = policy_decision(plan, key, &head, &view);
    let target = Target {
        model: &choice.model,
        from_policy: choice.from_policy,
        already_tried: &[],
    };
    let admission = ready(admit(plan, key, &view, target, NOW, Ledger::Memory))
        .unwrap_or_else(|e| panic!("{}", e.message));
    assert!(admission.prompt_tokens > 0);
    let upstream = head.upstream_body(body, admission.route.model, None);
    admission.admitted.settle(Some(Usage {
        prompt: admission.prompt_tokens,
        cached: 0,
        completion: 42,
    }));
    upstream
}

fn policy(c: &mut Criterion) {
    let plan = plan();
    decision(c, &plan);
    // vk-00000: team-000 (its rule reads usage), customer cust-00 (two rules), 10 global
    // rules, and one rule of its own.
    let key = plan.key_by_id("vk-00000").expect("key");
    let view = request(&plan, "vk-00000");
    let mut group = c.benchmark_group("policy_1k_keys");
    let mut roll = 0u64;
    group.bench_function(
        format!("rule_walk_{}_rules_none_match", key.rules.len()),
        |b| {
            b.iter(|| {
                roll = roll.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let choice = choose_route(
                    &plan,
                    key,
                    black_box("gpt-4o-mini"),
                    &[],
                    &view,
                    roll,
                    &mut |_, _| {},
                );
                assert!(choice.rule.is_none());
                choice
            })
        },
    );
    let mut texts = vec![SYSTEM.to_string(), USER.to_string()];
    group.bench_function(
        format!("input_guardrails_{}", key.input_guardrails.len()),
        |b| {
            b.iter(|| {
                let report = guard::check(
                    &key.input_guardrails,
                    &view,
                    black_box(&mut texts),
                    &mut || 0.5,
                    &mut Vec::new(),
                );
                assert!(report.blocked_by.is_none());
                report
            })
        },
    );
    let messages = serde_json::json!([
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER}
    ])
    .to_string();
    let raw: &RawValue = serde_json::from_str(&messages).expect("raw JSON");
    group.bench_function("prompt_tokens_estimate", |b| {
        b.iter(|| chat_prompt_tokens(black_box(raw)))
    });
    group.finish();

    // Each condition shape of the config on its own; the name says how it runs.
    let mut group = c.benchmark_group("cel_condition");
    let shapes = [
        r#"headers[?"x-route"].orValue("") == "lane-0""#,
        r#""x-experiment-1" in headers && stream"#,
        r#"model == "gpt-4o" && headers[?"x-tier"].orValue("") == "t2""#,
        "usage.budget_pct >= 90.0",
        r#"key.team != "team-000""#,
        "prompt_tokens > 16000",
    ];
    for (i, src) in shapes.iter().enumerate() {
        let expr = Expr::compile(src).expect("compiles");
        let how = if expr.is_native() {
            "native"
        } else {
            "interpreted"
        };
        group.bench_with_input(BenchmarkId::new(how, i), &expr, |b, expr| {
            b.iter(|| expr.eval_view(black_box(&view)).expect("evaluates"))
        });
    }
    group.finish();
}

criterion_group!(benches, policy);
criterion_main!(benches);
