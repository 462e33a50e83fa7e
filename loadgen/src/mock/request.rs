//! Just enough of the three request formats to answer them: model, stream flags, token caps,
//! prompt size and tools. Everything else in the body is skipped without being copied, so the mock
//! stays cheap at benchmark rates.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// What the mock learns from message text: its size (for prompt token counts) and whether it asks
/// about the weather (the trigger for a tool call). Built while parsing, the text itself is dropped.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextStats {
    pub chars: usize,
    pub mentions_weather: bool,
}

impl TextStats {
    fn of(text: &str) -> Self {
        TextStats {
            chars: text.chars().count(),
            mentions_weather: text
                .as_bytes()
                .windows(7)
                .any(|w| w.eq_ignore_ascii_case(b"weather")),
        }
    }

    fn add(&mut self, other: TextStats) {
        self.chars += other.chars;
        self.mentions_weather |= other.mentions_weather;
    }
}

/// Keys that can hold text in any of the formats: `text` (content parts, Gemini parts),
/// `content` (Anthropic tool_result blocks), `parts` (Gemini contents).
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum TextKey {
    Text,
    Content,
    Parts,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for TextStats {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextStats;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("message content")
            }
            fn visit_str<E>(self, v: &str) -> Result<TextStats, E> {
                Ok(TextStats::of(v))
            }
            fn visit_unit<E>(self) -> Result<TextStats, E> {
                Ok(TextStats::default())
            }
            fn visit_none<E>(self) -> Result<TextStats, E> {
                Ok(TextStats::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<TextStats, E> {
                Ok(TextStats::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<TextStats, E> {
                Ok(TextStats::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<TextStats, E> {
                Ok(TextStats::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<TextStats, E> {
                Ok(TextStats::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextStats, A::Error> {
                let mut total = TextStats::default();
                while let Some(part) = seq.next_element::<TextStats>()? {
                    total.add(part);
                }
                Ok(total)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextStats, A::Error> {
                let mut total = TextStats::default();
                while let Some(key) = map.next_key::<TextKey>()? {
                    match key {
                        TextKey::Text | TextKey::Content | TextKey::Parts => {
                            total.add(map.next_value::<TextStats>()?)
                        }
                        TextKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(total)
            }
        }
        d.deserialize_any(V)
    }
}

/// One message of any format: OpenAI/Anthropic use `content`, Gemini uses `parts`.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(default)]
    content: TextStats,
    #[serde(default)]
    parts: TextStats,
}

/// A whole conversation folded into totals, so no per-message allocation happens.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conversation {
    pub chars: usize,
    /// Whether the last message with role `user` mentions the weather.
    pub last_user_mentions_weather: bool,
}

impl<'de> Deserialize<'de> for Conversation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Conversation;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of messages")
            }
            fn visit_unit<E>(self) -> Result<Conversation, E> {
                Ok(Conversation::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Conversation, A::Error> {
                let mut conv = Conversation::default();
                while let Some(msg) = seq.next_element::<Message<'de>>()? {
                    let mut stats = msg.content;
                    stats.add(msg.parts);
                    conv.chars += stats.chars;
                    // Gemini omits the role on single-turn requests; it means "user" there.
                    match msg.role.as_deref() {
                        None | Some("user") => {
                            conv.last_user_mentions_weather = stats.mentions_weather
                        }
                        // A tool result answers the ask: the next turn is a plain answer,
                        // as in the Anthropic and Gemini shapes, where results are user turns.
                        Some("tool") => conv.last_user_mentions_weather = false,
                        _ => {}
                    }
                }
                Ok(conv)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Default, Debug)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Deserialize, Debug)]
struct Named<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

/// OpenAI tools: `[{"type":"function","function":{"name":...}}]`.
#[derive(Deserialize, Debug)]
struct OpenAiTool<'a> {
    #[serde(borrow)]
    function: Option<Named<'a>>,
}

#[derive(Deserialize, Debug)]
pub struct OpenAiChat<'a> {
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub messages: Conversation,
    #[serde(borrow, default)]
    tools: Option<Vec<OpenAiTool<'a>>>,
}

impl OpenAiChat<'_> {
    pub fn first_tool(&self) -> Option<&str> {
        let tool = self.tools.as_ref()?.first()?;
        tool.function.as_ref().map(|f| f.name.as_ref())
    }

    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

#[derive(Deserialize, Debug)]
pub struct AnthropicMessages<'a> {
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub system: TextStats,
    #[serde(default)]
    pub messages: Conversation,
    #[serde(borrow, default)]
    tools: Option<Vec<Named<'a>>>,
    #[serde(borrow, default)]
    thinking: Option<Thinking<'a>>,
}

/// `thinking: {"type": "enabled", "budget_tokens": N}` (extended thinking).
#[derive(Deserialize, Debug)]
struct Thinking<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

impl AnthropicMessages<'_> {
    pub fn first_tool(&self) -> Option<&str> {
        Some(self.tools.as_ref()?.first()?.name.as_ref())
    }

    /// Extended thinking was asked for: the answer starts with a signed thinking block.
    pub fn thinking(&self) -> bool {
        self.thinking.as_ref().is_some_and(|t| t.kind == "enabled")
    }
}

#[derive(Deserialize, Debug)]
struct GeminiTool<'a> {
    #[serde(borrow, default, rename = "functionDeclarations")]
    function_declarations: Option<Vec<Named<'a>>>,
}

#[derive(Deserialize, Debug, Default)]
pub struct GeminiGenerationConfig {
    #[serde(default, rename = "maxOutputTokens")]
    pub max_output_tokens: Option<u64>,
}

#[derive(Deserialize, Debug)]
pub struct GeminiGenerate<'a> {
    #[serde(default)]
    pub contents: Conversation,
    #[serde(default, rename = "systemInstruction")]
    pub system_instruction: TextStats,
    #[serde(default, rename = "generationConfig")]
    pub generation_config: Option<GeminiGenerationConfig>,
    #[serde(borrow, default)]
    tools: Option<Vec<GeminiTool<'a>>>,
}

impl GeminiGenerate<'_> {
    pub fn first_tool(&self) -> Option<&str> {
        let decls = self
            .tools
            .as_ref()?
            .first()?
            .function_declarations
            .as_ref()?;
        Some(decls.first()?.name.as_ref())
    }
}

/// Bedrock tools: `{"tools": [{"toolSpec": {"name": ...}}]}`.
#[derive(Deserialize, Debug)]
struct BedrockToolConfig<'a> {
    #[serde(borrow, default)]
    tools: Vec<BedrockTool<'a>>,
}

#[derive(Deserialize, Debug)]
struct BedrockTool<'a> {
    #[serde(borrow, default, rename = "toolSpec")]
    tool_spec: Option<Named<'a>>,
}

#[derive(Deserialize, Debug, Default)]
pub struct BedrockInferenceConfig {
    #[serde(default, rename = "maxTokens")]
    pub max_tokens: Option<u64>,
}

/// A Converse request; the model id is in the URL.
#[derive(Deserialize, Debug)]
pub struct BedrockConverse<'a> {
    #[serde(default)]
    pub messages: Conversation,
    #[serde(default)]
    pub system: TextStats,
    #[serde(default, rename = "inferenceConfig")]
    inference_config: Option<BedrockInferenceConfig>,
    #[serde(borrow, default, rename = "toolConfig")]
    tool_config: Option<BedrockToolConfig<'a>>,
}

impl BedrockConverse<'_> {
    pub fn first_tool(&self) -> Option<&str> {
        let tool = self.tool_config.as_ref()?.tools.first()?;
        tool.tool_spec.as_ref().map(|t| t.name.as_ref())
    }

    pub fn max_tokens(&self) -> Option<u64> {
        self.inference_config.as_ref()?.max_tokens
    }
}

/// Embedding inputs: a string, an array of strings, a token array, or an array of token arrays.
/// Each input keeps a hash of its text so identical inputs get identical vectors.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct EmbeddingInputs {
    pub hashes: Vec<u64>,
    pub chars: usize,
}

pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl<'de> Deserialize<'de> for EmbeddingInputs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// One array element: a string input, a token (the array is one tokenised input),
        /// or a nested token array (one input each).
        enum Element {
            Text(u64, usize),
            Token,
            Tokens(u64),
        }
        impl<'de> Deserialize<'de> for Element {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Element;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a string, a token or a token array")
                    }
                    fn visit_str<E>(self, v: &str) -> Result<Element, E> {
                        Ok(Element::Text(fnv1a(v.as_bytes()), v.chars().count()))
                    }
                    fn visit_u64<E>(self, _: u64) -> Result<Element, E> {
                        Ok(Element::Token)
                    }
                    fn visit_i64<E>(self, _: i64) -> Result<Element, E> {
                        Ok(Element::Token)
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
                        let mut h = 0xcbf2_9ce4_8422_2325u64;
                        while let Some(t) = seq.next_element::<u64>()? {
                            h = (h ^ t).wrapping_mul(0x0000_0100_0000_01b3);
                        }
                        Ok(Element::Tokens(h))
                    }
                }
                d.deserialize_any(V)
            }
        }

        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EmbeddingInputs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E>(self, v: &str) -> Result<EmbeddingInputs, E> {
                Ok(EmbeddingInputs {
                    hashes: vec![fnv1a(v.as_bytes())],
                    chars: v.chars().count(),
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EmbeddingInputs, A::Error> {
                let mut out = EmbeddingInputs::default();
                let mut tokens = 0usize;
                while let Some(el) = seq.next_element::<Element>()? {
                    match el {
                        Element::Text(h, chars) => {
                            out.hashes.push(h);
                            out.chars += chars;
                        }
                        Element::Tokens(h) => {
                            out.hashes.push(h);
                            out.chars += 4;
                        }
                        Element::Token => tokens += 1,
                    }
                }
                if tokens > 0 {
                    out.hashes.push(tokens as u64);
                    out.chars += tokens * 4;
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Debug)]
pub struct OpenAiEmbeddings<'a> {
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    pub input: EmbeddingInputs,
}

/// A Gemini `batchEmbedContents` body: one embedding request per input.
#[derive(Deserialize, Debug)]
pub struct GeminiBatchEmbed<'a> {
    #[serde(borrow)]
    pub requests: Vec<GeminiEmbedRequest<'a>>,
}

#[derive(Deserialize, Debug)]
pub struct GeminiEmbedRequest<'a> {
    /// `models/{model}`; Gemini wants it on every request, naming the model of the URL.
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: GeminiEmbedContent<'a>,
    #[serde(default, rename = "outputDimensionality")]
    pub output_dimensionality: Option<usize>,
}

#[derive(Deserialize, Debug)]
struct GeminiEmbedContent<'a> {
    #[serde(borrow)]
    parts: Vec<GeminiTextPart<'a>>,
}

#[derive(Deserialize, Debug)]
struct GeminiTextPart<'a> {
    #[serde(borrow, default)]
    text: Cow<'a, str>,
}

impl GeminiEmbedRequest<'_> {
    /// The hash of the text (its parts joined), as an OpenAI input of that text hashes.
    pub fn text_hash(&self) -> u64 {
        let text: String = self.content.parts.iter().map(|p| &*p.text).collect();
        fnv1a(text.as_bytes())
    }
}

/// Prompt tokens by the usual rule of thumb (4 characters per token), never zero so that usage
/// accounting downstream always sees a cost.
pub fn prompt_tokens(chars: usize) -> u64 {
    (chars / 4).max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_string_and_part_contents_are_counted() {
        let body = br#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},
            "messages":[{"role":"system","content":"Be brief."},
                        {"role":"user","content":[{"type":"text","text":"What is the weather?"},
                                                  {"type":"image_url","image_url":{"url":"http://x"}}]}],
            "tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}],
            "max_tokens":7,"temperature":0.2}"#;
        let req: OpenAiChat = serde_json::from_slice(body).unwrap();
        assert_eq!(req.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(req.stream, Some(true));
        assert!(req.include_usage());
        assert_eq!(req.max_tokens, Some(7));
        assert_eq!(
            req.messages.chars,
            "Be brief.".len() + "What is the weather?".len()
        );
        assert!(req.messages.last_user_mentions_weather);
        assert_eq!(req.first_tool(), Some("get_weather"));
    }

    #[test]
    fn only_the_last_user_message_triggers_tools() {
        let body = br#"{"messages":[{"role":"user","content":"weather?"},
                                    {"role":"assistant","content":"sunny"},
                                    {"role":"user","content":"thanks"}]}"#;
        let req: OpenAiChat = serde_json::from_slice(body).unwrap();
        assert!(!req.messages.last_user_mentions_weather);
        assert_eq!(req.first_tool(), None);
        assert!(!req.include_usage());
    }

    #[test]
    fn a_tool_result_ends_the_ask() {
        let body = br#"{"messages":[{"role":"user","content":"weather?"},
                                    {"role":"assistant","tool_calls":[]},
                                    {"role":"tool","tool_call_id":"c","content":"18 C"}],
                        "tools":[{"type":"function","function":{"name":"get_weather"}}]}"#;
        let req: OpenAiChat = serde_json::from_slice(body).unwrap();
        assert!(!req.messages.last_user_mentions_weather);
    }

    #[test]
    fn escaped_strings_are_counted_without_borrowing() {
        let body = br#"{"model":"a\"b","messages":[{"role":"user","content":"WEATHER \u00e9"}]}"#;
        let req: OpenAiChat = serde_json::from_slice(body).unwrap();
        assert_eq!(req.model.as_deref(), Some("a\"b"));
        assert_eq!(req.messages.chars, 9);
        assert!(req.messages.last_user_mentions_weather);
    }

    #[test]
    fn anthropic_blocks_system_and_tools() {
        let body =
            br#"{"model":"claude-x","max_tokens":100,"system":[{"type":"text","text":"abcd"}],
            "messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t",
                         "content":[{"type":"text","text":"weather is fine"}]}]}],
            "tools":[{"name":"get_weather","input_schema":{"type":"object"}}]}"#;
        let req: AnthropicMessages = serde_json::from_slice(body).unwrap();
        assert_eq!(req.system.chars, 4);
        assert_eq!(req.messages.chars, 15);
        assert!(req.messages.last_user_mentions_weather);
        assert_eq!(req.first_tool(), Some("get_weather"));
    }

    #[test]
    fn gemini_contents_and_declarations() {
        let body = br#"{"contents":[{"parts":[{"text":"weather in Paris"}]}],
            "systemInstruction":{"parts":[{"text":"hi"}]},
            "generationConfig":{"maxOutputTokens":3},
            "tools":[{"functionDeclarations":[{"name":"get_weather"}]}]}"#;
        let req: GeminiGenerate = serde_json::from_slice(body).unwrap();
        assert_eq!(req.contents.chars, 16);
        assert_eq!(req.system_instruction.chars, 2);
        assert!(req.contents.last_user_mentions_weather);
        assert_eq!(req.first_tool(), Some("get_weather"));
        assert_eq!(req.generation_config.unwrap().max_output_tokens, Some(3));
    }

    #[test]
    fn embedding_inputs_of_every_shape() {
        let one: OpenAiEmbeddings = serde_json::from_slice(br#"{"input":"abc"}"#).unwrap();
        assert_eq!(one.input.hashes.len(), 1);
        let many: OpenAiEmbeddings =
            serde_json::from_slice(br#"{"input":["abc","abc","xyz"]}"#).unwrap();
        assert_eq!(many.input.hashes.len(), 3);
        assert_eq!(many.input.hashes[0], many.input.hashes[1]);
        assert_ne!(many.input.hashes[0], many.input.hashes[2]);
        let tokens: OpenAiEmbeddings = serde_json::from_slice(br#"{"input":[1,2,3]}"#).unwrap();
        assert_eq!(tokens.input.hashes.len(), 1);
        let nested: OpenAiEmbeddings = serde_json::from_slice(br#"{"input":[[1,2],[3]]}"#).unwrap();
        assert_eq!(nested.input.hashes.len(), 2);
        assert!(serde_json::from_slice::<OpenAiEmbeddings>(br#"{"input":{}}"#).is_err());
    }

    #[test]
    fn gemini_batch_embeds_hash_like_openai_inputs() {
        let body = br#"{"requests":[
            {"model":"models/e","content":{"parts":[{"text":"abc"}]},"outputDimensionality":4},
            {"model":"models/e","content":{"parts":[{"text":"a"},{"text":"bc"}]}}]}"#;
        let req: GeminiBatchEmbed = serde_json::from_slice(body).unwrap();
        assert_eq!(req.requests.len(), 2);
        assert_eq!(req.requests[0].model.as_deref(), Some("models/e"));
        assert_eq!(req.requests[0].output_dimensionality, Some(4));
        assert_eq!(req.requests[1].output_dimensionality, None);
        assert_eq!(req.requests[0].text_hash(), req.requests[1].text_hash());
        let openai: OpenAiEmbeddings = serde_json::from_slice(br#"{"input":"abc"}"#).unwrap();
        assert_eq!(openai.input.hashes[0], req.requests[0].text_hash());
        assert!(serde_json::from_slice::<GeminiBatchEmbed>(br#"{"requests":[{}]}"#).is_err());
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        assert!(serde_json::from_slice::<OpenAiChat>(b"{").is_err());
        assert!(serde_json::from_slice::<OpenAiChat>(br#"{"messages":"x"}"#).is_err());
        assert!(serde_json::from_slice::<OpenAiChat>(br#"{"stream":"yes"}"#).is_err());
    }

    #[test]
    fn prompt_tokens_never_zero() {
        assert_eq!(prompt_tokens(0), 1);
        assert_eq!(prompt_tokens(9), 2);
        assert_eq!(prompt_tokens(400), 100);
    }
}
