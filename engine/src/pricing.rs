//! What a call costs: USD per 1M tokens per model, from a built-in table of list prices
//! overridden by the `pricing:` section of tollgate.yaml (SPEC §5–§6).
//!
//! Prices are held as integer micro-dollars per 1M tokens and costs come out in integer
//! micro-dollars (the unit of budget counters), rounded up: a budget must never undercount.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The built-in table; see the header of the file for its date and sources.
const BUILTIN_YAML: &str = include_str!("pricing/builtin.yaml");

const MICROS_PER_USD: f64 = 1_000_000.0;
const TOKENS_PER_RATE: u128 = 1_000_000;
/// No model costs anywhere near $1M per 1M tokens; a larger number is a typo in the config.
const MAX_USD_PER_MILLION: f64 = 1_000_000.0;

/// Per-token rates of one model, in micro-dollars per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub input: u64,
    pub cached_input: u64,
    pub output: u64,
}

/// Rates that apply instead when a prompt is longer than `above_prompt_tokens`
/// (e.g. Gemini 2.5 Pro above 200k tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongContext {
    pub above_prompt_tokens: u64,
    pub rates: Rates,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub rates: Rates,
    pub long_context: Option<LongContext>,
}

impl Price {
    /// Cost in micro-dollars, rounded up. `prompt` counts every input token *including* the
    /// `cached` ones (OpenAI's `prompt_tokens`; for Anthropic pass input + cache reads);
    /// cached tokens are billed at the cached rate, the rest at the input rate.
    pub fn cost_micros(&self, prompt: u64, cached: u64, completion: u64) -> u64 {
        let rates = match self.long_context {
            Some(lc) if prompt > lc.above_prompt_tokens => lc.rates,
            _ => self.rates,
        };
        let cached = cached.min(prompt);
        let uncached = prompt - cached;
        // u64 × u64 fits in u128; the sum of three such products does too.
        let scaled = u128::from(uncached) * u128::from(rates.input)
            + u128::from(cached) * u128::from(rates.cached_input)
            + u128::from(completion) * u128::from(rates.output);
        u64::try_from(scaled.div_ceil(TOKENS_PER_RATE)).unwrap_or(u64::MAX)
    }
}

/// A price as written in tollgate.yaml: USD per 1M tokens. `cached_input` defaults to `input`
/// (no discount assumed).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    pub input: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    pub output: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_context: Option<LongContextConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LongContextConfig {
    pub above_prompt_tokens: u64,
    pub input: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    pub output: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("pricing `{model}`: {field} must be a number of USD per 1M tokens between 0 and 1000000, not {value}")]
pub struct PricingError {
    pub model: String,
    pub field: &'static str,
    pub value: f64,
}

impl PriceConfig {
    /// Validates and converts to integer rates; `model` names the entry in errors.
    pub fn to_price(&self, model: &str) -> Result<Price, PricingError> {
        const FIELDS: [&str; 3] = ["input", "cached_input", "output"];
        const LONG_FIELDS: [&str; 3] = [
            "long_context.input",
            "long_context.cached_input",
            "long_context.output",
        ];
        let rates = to_rates(
            model,
            [
                self.input,
                self.cached_input.unwrap_or(self.input),
                self.output,
            ],
            FIELDS,
        )?;
        let long_context = match &self.long_context {
            None => None,
            Some(lc) => Some(LongContext {
                above_prompt_tokens: lc.above_prompt_tokens,
                rates: to_rates(
                    model,
                    [lc.input, lc.cached_input.unwrap_or(lc.input), lc.output],
                    LONG_FIELDS,
                )?,
            }),
        };
        Ok(Price {
            rates,
            long_context,
        })
    }
}

/// USD per 1M tokens → micro-dollars per 1M tokens, refusing what cannot be a price.
fn to_rates(model: &str, usd: [f64; 3], fields: [&'static str; 3]) -> Result<Rates, PricingError> {
    let mut micros = [0u64; 3];
    for ((out, value), field) in micros.iter_mut().zip(usd).zip(fields) {
        if !(value.is_finite() && (0.0..=MAX_USD_PER_MILLION).contains(&value)) {
            return Err(PricingError {
                model: model.to_string(),
                field,
                value,
            });
        }
        *out = (value * MICROS_PER_USD).round() as u64;
    }
    let [input, cached_input, output] = micros;
    Ok(Rates {
        input,
        cached_input,
        output,
    })
}

/// Prices by provider then model, and by bare model name; looked up without allocating.
#[derive(Debug, Clone, Default)]
struct Prices {
    by_provider: HashMap<String, HashMap<String, Price>>,
    bare: HashMap<String, Price>,
}

impl Prices {
    fn get(&self, provider: &str, model: &str) -> Option<Price> {
        self.by_provider
            .get(provider)
            .and_then(|models| models.get(model))
            .or_else(|| self.bare.get(model))
            .copied()
    }
}

#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    overrides: Prices,
    builtin: Prices,
}

impl PriceTable {
    /// A table with no prices: every lookup misses.
    pub fn empty() -> PriceTable {
        PriceTable::default()
    }

    /// The built-in list prices. Built-in entries are keyed both `provider/model` (provider
    /// being the usual name: openai, anthropic, gemini, mistral, groq, deepseek) and by the
    /// bare model name.
    pub fn builtin() -> PriceTable {
        match parse_builtin(BUILTIN_YAML) {
            Ok(builtin) => PriceTable {
                overrides: Prices::default(),
                builtin,
            },
            // Unreachable while the unit test that parses the table passes; a gateway without
            // built-in prices still runs (budgets then count configured prices only).
            Err(e) => {
                tracing::error!("built-in pricing table is invalid: {e}");
                PriceTable::default()
            }
        }
    }

    /// Adds the `pricing:` section of the config. Keys are `provider/model` or a bare model
    /// name; an override beats any built-in price for the same model, and a bare override
    /// applies under every provider that has no `provider/model` override.
    pub fn with_overrides<'a>(
        mut self,
        overrides: impl IntoIterator<Item = (&'a String, &'a PriceConfig)>,
    ) -> Result<PriceTable, PricingError> {
        for (key, config) in overrides {
            let price = config.to_price(key)?;
            // `groq/meta-llama/llama-4-scout` is provider `groq`, model `meta-llama/...`;
            // every key is also kept whole as a bare name, since model names may contain `/`.
            if let Some((provider, model)) = key.split_once('/') {
                self.overrides
                    .by_provider
                    .entry(provider.to_string())
                    .or_default()
                    .insert(model.to_string(), price);
            }
            self.overrides.bare.insert(key.clone(), price);
        }
        Ok(self)
    }

    /// The price of `model` served by `provider`. Lookup order: configured `provider/model`,
    /// configured bare model, built-in `provider/model`, built-in bare model; then the same
    /// again with a dated snapshot suffix removed (`claude-sonnet-4-5-20250929` →
    /// `claude-sonnet-4-5`, `gpt-4o-2024-08-06` → `gpt-4o`); else `None`.
    pub fn price(&self, provider: &str, model: &str) -> Option<Price> {
        self.exact(provider, model)
            .or_else(|| strip_snapshot_date(model).and_then(|base| self.exact(provider, base)))
    }

    fn exact(&self, provider: &str, model: &str) -> Option<Price> {
        self.overrides
            .get(provider, model)
            .or_else(|| self.builtin.get(provider, model))
    }

    /// Number of distinct `provider/model` and bare entries (overrides and built-in).
    pub fn len(&self) -> usize {
        let count =
            |p: &Prices| p.bare.len() + p.by_provider.values().map(HashMap::len).sum::<usize>();
        count(&self.overrides) + count(&self.builtin)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn parse_builtin(text: &str) -> Result<Prices, String> {
    let table: BTreeMap<String, BTreeMap<String, PriceConfig>> =
        yaml_serde::from_str(text).map_err(|e| e.to_string())?;
    let mut prices = Prices::default();
    for (provider, models) in table {
        for (model, config) in models {
            let price = config
                .to_price(&format!("{provider}/{model}"))
                .map_err(|e| e.to_string())?;
            // Bare names: the first provider (alphabetically) wins; the table test keeps bare
            // names unambiguous so this never decides anything.
            prices.bare.entry(model.clone()).or_insert(price);
            prices
                .by_provider
                .entry(provider.clone())
                .or_default()
                .insert(model, price);
        }
    }
    Ok(prices)
}

/// `name-YYYYMMDD` or `name-YYYY-MM-DD` → `name`; anything else → `None`.
fn strip_snapshot_date(model: &str) -> Option<&str> {
    let b = model.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let dash = |i: usize| b.get(i) == Some(&b'-');
    let n = b.len();
    // `get` keeps this panic-free for short or non-ASCII names; the cut is always just before
    // an ASCII `-`, hence on a char boundary.
    if n > 9 && dash(n - 9) && digits(n - 8..n) {
        return model.get(..n - 9);
    }
    if n > 11
        && dash(n - 11)
        && digits(n - 10..n - 6)
        && dash(n - 6)
        && digits(n - 5..n - 3)
        && dash(n - 3)
        && digits(n - 2..n)
    {
        return model.get(..n - 11);
    }
    None
}

#[cfg(test)]
#[path = "pricing/tests.rs"]
mod tests;
