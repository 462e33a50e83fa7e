use super::*;

fn usd(input: f64, cached_input: Option<f64>, output: f64) -> PriceConfig {
    PriceConfig {
        input,
        cached_input,
        output,
        long_context: None,
    }
}

fn rates_usd(p: Price) -> (f64, f64, f64) {
    let f = |micros: u64| micros as f64 / MICROS_PER_USD;
    (f(p.rates.input), f(p.rates.cached_input), f(p.rates.output))
}

#[test]
fn the_builtin_table_parses_and_covers_the_major_models() {
    let table = PriceTable::builtin();
    let expected = [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4.1"),
        ("openai", "gpt-4.1-mini"),
        ("openai", "gpt-4.1-nano"),
        ("openai", "o3"),
        ("openai", "o4-mini"),
        ("openai", "gpt-5"),
        ("openai", "gpt-5-mini"),
        ("openai", "gpt-5-nano"),
        ("anthropic", "claude-opus-4"),
        ("anthropic", "claude-opus-4-1"),
        ("anthropic", "claude-sonnet-4"),
        ("anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-haiku-4-5"),
        ("anthropic", "claude-3-5-haiku"),
        ("gemini", "gemini-2.5-pro"),
        ("gemini", "gemini-2.5-flash"),
        ("gemini", "gemini-2.5-flash-lite"),
        ("gemini", "gemini-2.0-flash"),
        ("mistral", "mistral-large-2411"),
        ("groq", "llama-3.3-70b-versatile"),
        ("groq", "llama-3.1-8b-instant"),
        ("deepseek", "deepseek-chat"),
        ("deepseek", "deepseek-reasoner"),
    ];
    for (provider, model) in expected {
        let qualified = table.price(provider, model);
        assert!(qualified.is_some(), "{provider}/{model}");
        assert_eq!(
            table.price("any-provider", model),
            qualified,
            "bare {model}"
        );
    }
    assert_eq!(
        rates_usd(table.price("openai", "gpt-4o").expect("listed")),
        (2.50, 1.25, 10.00)
    );
    assert_eq!(
        rates_usd(
            table
                .price("anthropic", "claude-haiku-4-5")
                .expect("listed")
        ),
        (1.00, 0.10, 5.00)
    );
    assert_eq!(
        rates_usd(
            table
                .price("deepseek", "deepseek-reasoner")
                .expect("listed")
        ),
        (0.28, 0.028, 0.42)
    );
}

#[test]
fn builtin_bare_names_are_unambiguous() {
    let raw: BTreeMap<String, BTreeMap<String, PriceConfig>> =
        yaml_serde::from_str(BUILTIN_YAML).expect("builtin parses");
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (provider, models) in &raw {
        for model in models.keys() {
            if let Some(first) = seen.insert(model, provider) {
                panic!("`{model}` is listed under both {first} and {provider}");
            }
        }
    }
    assert_eq!(PriceTable::builtin().len(), 2 * seen.len());
}

#[test]
fn a_missing_cached_rate_bills_cached_tokens_as_input() {
    let table = PriceTable::builtin();
    let llama = table
        .price("groq", "llama-3.3-70b-versatile")
        .expect("listed");
    assert_eq!(llama.rates.cached_input, llama.rates.input);
}

#[test]
fn unknown_models_have_no_price() {
    let table = PriceTable::builtin();
    assert_eq!(table.price("openai", "gpt-unknown"), None);
    assert_eq!(table.price("", ""), None);
    assert!(PriceTable::empty().price("openai", "gpt-4o").is_none());
    assert!(PriceTable::empty().is_empty());
}

#[test]
fn dated_snapshots_fall_back_to_their_model() {
    let table = PriceTable::builtin();
    let sonnet = table.price("anthropic", "claude-sonnet-4-5");
    assert_eq!(
        table.price("anthropic", "claude-sonnet-4-5-20250929"),
        sonnet
    );
    assert_eq!(
        table.price("anthropic", "claude-sonnet-4-20250514"),
        table.price("anthropic", "claude-sonnet-4")
    );
    assert_eq!(
        table.price("openai", "gpt-4o-2024-08-06"),
        table.price("openai", "gpt-4o")
    );
    // A snapshot with its own price is listed and found exactly.
    assert_eq!(
        rates_usd(table.price("openai", "gpt-4o-2024-05-13").expect("listed")),
        (5.00, 5.00, 15.00)
    );
}

#[test]
fn snapshot_dates_are_recognised_only_in_their_two_shapes() {
    assert_eq!(
        strip_snapshot_date("claude-haiku-4-5-20251001"),
        Some("claude-haiku-4-5")
    );
    assert_eq!(strip_snapshot_date("gpt-4.1-2025-04-14"), Some("gpt-4.1"));
    for not_dated in [
        "gpt-4o",
        "mistral-large-2411",
        "-20250101",
        "x-2025-0414",
        "x-2025_04_14",
        "",
    ] {
        assert_eq!(strip_snapshot_date(not_dated), None, "{not_dated}");
    }
    // Non-ASCII names must not panic on a char boundary.
    assert_eq!(strip_snapshot_date("modèle-20250101"), Some("modèle"));
    assert_eq!(strip_snapshot_date("ééééééééééé"), None);
}

#[test]
fn overrides_beat_the_builtin_table_in_the_documented_order() {
    let mut overrides = BTreeMap::new();
    overrides.insert("openai/gpt-4o".to_string(), usd(2.00, Some(1.00), 8.00));
    overrides.insert("gpt-4o-mini".to_string(), usd(0.10, None, 0.50));
    overrides.insert("azure/gpt-4o-mini".to_string(), usd(0.20, None, 0.70));
    overrides.insert("my-model".to_string(), usd(1.00, None, 1.00));
    let table = PriceTable::builtin()
        .with_overrides(&overrides)
        .expect("valid overrides");

    assert_eq!(
        rates_usd(table.price("openai", "gpt-4o").expect("set")),
        (2.00, 1.00, 8.00)
    );
    // Only `openai/gpt-4o` was overridden; another provider gets the built-in price.
    assert_eq!(
        rates_usd(table.price("azure", "gpt-4o").expect("set")),
        (2.50, 1.25, 10.00)
    );
    // A bare override applies under every provider, over the built-in `openai/gpt-4o-mini`...
    assert_eq!(
        rates_usd(table.price("openai", "gpt-4o-mini").expect("set")),
        (0.10, 0.10, 0.50)
    );
    // ...except where a provider-qualified override says otherwise.
    assert_eq!(
        rates_usd(table.price("azure", "gpt-4o-mini").expect("set")),
        (0.20, 0.20, 0.70)
    );
    assert!(table.price("local", "my-model").is_some());
}

#[test]
fn override_keys_may_contain_slashes_in_the_model_name() {
    let mut overrides = BTreeMap::new();
    overrides.insert(
        "groq/openai/gpt-oss-120b".to_string(),
        usd(0.15, None, 0.60),
    );
    overrides.insert("qwen/qwen3-32b".to_string(), usd(0.29, None, 0.59));
    let table = PriceTable::empty()
        .with_overrides(&overrides)
        .expect("valid");
    assert!(table.price("groq", "openai/gpt-oss-120b").is_some());
    // A key whose first segment is not a provider still works as a bare model name.
    assert!(table.price("groq", "qwen/qwen3-32b").is_some());
    assert!(table.price("qwen", "qwen3-32b").is_some());
}

#[test]
fn invalid_override_prices_are_refused_with_the_key_and_field() {
    for (bad, field) in [
        (usd(-1.0, None, 1.0), "input"),
        (usd(1.0, Some(f64::NAN), 1.0), "cached_input"),
        (usd(1.0, None, 2.0e6), "output"),
    ] {
        let overrides = BTreeMap::from([("openai/gpt-4o".to_string(), bad)]);
        let err = PriceTable::builtin()
            .with_overrides(&overrides)
            .expect_err("invalid");
        assert_eq!(err.field, field);
        assert!(err.to_string().contains("`openai/gpt-4o`"), "{err}");
    }
}

#[test]
fn price_configs_read_from_yaml() {
    let p: PriceConfig =
        yaml_serde::from_str("{input: 2.5, cached_input: 1.25, output: 10}").expect("valid");
    assert_eq!(p, usd(2.5, Some(1.25), 10.0));
    assert!(yaml_serde::from_str::<PriceConfig>("{input: 1, output: 2, cached: 1}").is_err());
    assert!(yaml_serde::from_str::<PriceConfig>("{input: 1}").is_err());
}

#[test]
fn cost_is_integer_micro_dollars_rounded_up() {
    let gpt4o = usd(2.50, Some(1.25), 10.00)
        .to_price("gpt-4o")
        .expect("valid");
    // 800 uncached × $2.50 + 200 cached × $1.25 + 500 × $10.00, per 1M tokens.
    assert_eq!(gpt4o.cost_micros(1_000, 200, 500), 2_000 + 250 + 5_000);
    assert_eq!(gpt4o.cost_micros(1_000_000, 0, 1_000_000), 12_500_000);
    assert_eq!(gpt4o.cost_micros(0, 0, 0), 0);
    // 1 token at $0.15/1M is 0.15 micro-dollars: billed as 1, never 0.
    let mini = usd(0.15, None, 0.60).to_price("mini").expect("valid");
    assert_eq!(mini.cost_micros(1, 0, 0), 1);
    assert_eq!(mini.cost_micros(10, 0, 0), 2);
    // More cached tokens than prompt tokens (a provider quirk) bills the prompt as cached.
    assert_eq!(
        gpt4o.cost_micros(100, 500, 0),
        gpt4o.cost_micros(100, 100, 0)
    );
    // Absurd counts saturate instead of overflowing.
    assert_eq!(gpt4o.cost_micros(u64::MAX, 0, u64::MAX), u64::MAX);
}

#[test]
fn long_prompts_use_the_long_context_rates() {
    let pro = PriceTable::builtin()
        .price("gemini", "gemini-2.5-pro")
        .expect("listed");
    assert_eq!(pro.cost_micros(200_000, 0, 1_000), 250_000 + 10_000);
    assert_eq!(pro.cost_micros(200_001, 0, 1_000), 500_003 + 15_000);
    let flash = PriceTable::builtin()
        .price("gemini", "gemini-2.5-flash")
        .expect("listed");
    assert!(flash.long_context.is_none());
}
