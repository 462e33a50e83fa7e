//! The OpenAI-compatible proxy path: authenticate, parse, route, forward, relay.

use super::admit::{admit, Admission, Target};
use super::answer_headers::{copy_response_headers, insert_ratelimit_headers, insert_str};
use super::attempt::{send_with_retries, Attempts};
use super::body::{read_limited, ProxyBody};
use super::cached::{self, CacheResult, Looked, Recording, StoreAs, CACHE_HEADER};
use super::client_format::{AnswerNeeds, ClientFormat};
use super::finish::{Caller, Finish, RequestReport};
use super::inbound;
use super::inbound::Inbound;
use super::native::{self, ClientBytes, NativeAnswer, Shadow};
use super::outbound::{self, Answerer};
use super::provider_request::{self, UpstreamRequest};
use super::relay::{Relay, StreamBounds};
use super::request::RequestHead;
use super::respond::{self, ProxyResponse, REQUEST_ID};
use super::translated::{self, UpstreamStream};
use super::view::ProxyView;
use super::Gateway;
use crate::admission::auth;
use crate::admission::estimate::usage_of;
use crate::admission::route::check_model;
use crate::admission::settled::SettledUsage;
use crate::cache::CachedUsage;
use crate::error::{ApiError, ErrorType};
use crate::plan::KeyPlan;
use crate::plan::{Plan, ProviderKeyPlan, ProviderPlan, ProviderWire};
use crate::reliability::trackers::ProviderHealth;
use crate::telemetry::{Endpoint, RequestOutcome, TraceContext};
use bytes::Bytes;
use http::header;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upper bound on a buffered (non-stream) upstream answer.
const MAX_UPSTREAM_BODY: usize = 64 << 20;

/// What the handler learned, for metrics and the request report.
struct Served {
    provider: Option<Arc<str>>,
    /// Owned: the name lives in the request body, which is gone by the time metrics are written.
    model: String,
    upstream_wait: Duration,
    stream: bool,
    settled: Arc<SettledUsage>,
    /// The caller, once authenticated.
    caller: Option<Caller>,
    /// The model the client asked for.
    requested_model: String,
    /// Guardrail actions taken on the request and its answer, by guardrail name.
    guardrails: Vec<(Arc<str>, &'static str)>,
    /// Guardrails that flagged the request or its answer (`x-tollgate-guardrail-flags`).
    flags: Vec<Arc<str>>,
    /// With `logs.bodies: true`: what was sent upstream and a whole answer.
    bodies: Option<(Bytes, Option<Bytes>)>,
    /// The request's trace, when traces are exported.
    trace: Option<TraceContext>,
    /// When the answering attempt started, and how long it took to answer.
    answered: Option<(Instant, Duration)>,
    /// What the response cache did; where to store the answer on a miss.
    cache: CacheResult,
    store_as: Option<StoreAs>,
    /// What the answer's translation must know of the client's request.
    answer_needs: AnswerNeeds,
}

pub async fn handle(gw: &Gateway, endpoint: Endpoint, req: Request<Incoming>) -> ProxyResponse {
    handle_as(gw, endpoint, ClientFormat::OpenAi, req).await
}

/// The proxy path for a client of any API shape: its request is read as OpenAI Chat, and the
/// answer and every error are given back in its own shape.
pub async fn handle_as(
    gw: &Gateway,
    endpoint: Endpoint,
    format: ClientFormat,
    req: Request<Incoming>,
) -> ProxyResponse {
    let started = Instant::now();
    let arrived = chrono::Utc::now();
    let request_id = respond::new_request_id();
    let plan = gw.plan.load_full();
    let mut served = Served {
        provider: None,
        model: String::new(),
        upstream_wait: Duration::ZERO,
        stream: false,
        settled: Arc::default(),
        caller: None,
        requested_model: String::new(),
        guardrails: Vec::new(),
        flags: Vec::new(),
        bodies: None,
        trace: None,
        answered: None,
        cache: CacheResult::Off,
        store_as: None,
        answer_needs: AnswerNeeds::default(),
    };
    let mut error = None;
    // Failed attempts (as the 502 body lists them); the answering one is not among them.
    let mut attempts = Attempts::default();
    let call = Call {
        endpoint,
        format,
        request_id: &request_id,
    };
    let response = match proxy(gw, &plan, call, req, &mut attempts, &mut served).await {
        Ok(resp) => format.response(resp, std::mem::take(&mut served.answer_needs)),
        Err(e) => {
            if let Some(g) = e.fields.get("guardrail").and_then(|g| g.as_str()) {
                served.guardrails.push((g.into(), "block"));
            }
            error = Some((e.kind.as_str(), e.message.clone()));
            if matches!(e.kind, ErrorType::RateLimited | ErrorType::BudgetExceeded) {
                let field = |name: &str| e.fields.get(name).and_then(|v| v.as_str()).unwrap_or("");
                gw.metrics
                    .record_rejection(field("scope"), field("limit_kind"));
            }
            format.error(&e, Some(&request_id))
        }
    };
    let total = started.elapsed();
    let status = response.status().as_u16();
    gw.metrics.record(&RequestOutcome {
        endpoint,
        provider: served.provider.as_deref().unwrap_or(""),
        model: &served.model,
        key: served
            .caller
            .as_ref()
            .filter(|_| plan.metrics_per_key)
            .map(|c| &*c.key),
        status,
        total,
        overhead: total.saturating_sub(served.upstream_wait),
    });
    if let Some(provider) = &served.provider {
        if !served.upstream_wait.is_zero() {
            gw.metrics
                .usage
                .record_upstream(provider, served.upstream_wait);
        }
    }
    let finish = Finish {
        metrics: gw.metrics.clone(),
        log: gw.request_log.clone(),
        traces: gw.traces.clone(),
        report: RequestReport {
            started,
            endpoint,
            status,
            provider: served.provider,
            model: served.model,
            stream: served.stream,
            settled: served.settled,
            request_id,
            format,
            caller: served.caller,
            requested_model: served.requested_model,
            attempts: attempts.0,
            attempt_times: attempts.1.into_iter().chain(served.answered).collect(),
            trace: served.trace,
            guardrails: {
                let mut all = served.guardrails;
                all.extend(served.flags.into_iter().map(|g| (g, "flag")));
                all
            },
            error,
            upstream_wait: served.upstream_wait,
            overhead: total.saturating_sub(served.upstream_wait),
            arrived,
            bodies: served.bodies,
            cache: served.cache,
        },
    };
    let (parts, body) = response.into_parts();
    ProxyResponse::from_parts(parts, finish.attach(body))
}

/// What the endpoint says about a request, before its body is read.
struct Call<'a> {
    endpoint: Endpoint,
    format: ClientFormat,
    request_id: &'a HeaderValue,
}

async fn proxy(
    gw: &Gateway,
    plan: &Plan,
    call: Call<'_>,
    req: Request<Incoming>,
    attempts: &mut Attempts,
    served: &mut Served,
) -> Result<ProxyResponse, ApiError> {
    let Call {
        endpoint,
        format,
        request_id,
    } = call;
    let (parts, body) = req.into_parts();
    let now = chrono::Utc::now().timestamp();
    if gw.traces.is_some() {
        let parent = parts.headers.get("traceparent").map(HeaderValue::as_bytes);
        served.trace = Some(TraceContext::from_header(parent));
    }
    let key = auth::authenticate(plan, &parts.headers, now)?;
    served.caller = Some(Caller {
        key: key.id.clone(),
        team: key.team.clone(),
        customer: key.customer.clone(),
    });
    let body = read_limited(&parts.headers, body, plan.max_body_bytes).await?;
    // Kept for a provider of the client's own format (see `native`).
    let client_body = body.clone();
    let (body, answer_needs) = format.request_body(parts.uri.path(), body)?;
    served.answer_needs = answer_needs;
    let head = super::request::parse_head(&body, endpoint)?;
    served.requested_model = head.model.to_string();
    let view = ProxyView::new(
        &head,
        &parts.headers,
        &body,
        endpoint.as_str(),
        key,
        chrono::Utc::now(),
    );
    let Inbound {
        model: routed_model,
        from_policy: routed_by_policy,
        fallbacks,
        redacted_messages,
        flags,
        guardrail_actions,
    } = inbound::apply(gw, plan, key, &head, &view).await?;
    served.guardrails = guardrail_actions;
    served.flags = flags;

    // The cache answers after the policy checks above and before limits and providers.
    match cached::look_up(
        &gw.cache,
        &parts.headers,
        parts.uri.path(),
        &routed_model,
        &body,
        key,
    )
    .await?
    {
        Looked::Off => {}
        Looked::Miss(to) => {
            served.cache = CacheResult::Miss;
            served.store_as = Some(to);
        }
        Looked::Hit(entry, similarity) => {
            served.cache = if similarity.is_some() {
                CacheResult::HitSemantic
            } else {
                CacheResult::HitExact
            };
            if gw.cache.config().count_hits_against_limits {
                // Counted as a request against every tier; it used no tokens and cost nothing.
                let target = Target {
                    model: &routed_model,
                    from_policy: routed_by_policy,
                    already_tried: &[],
                };
                let admission = admit(plan, key, &view, target, now, gw.ledger(plan)).await?;
                admission.admitted.settle(Some(Default::default()));
            }
            served.provider = Some(entry.provider.as_str().into());
            served.model.clone_from(&entry.model);
            served.stream = entry.stream;
            return Ok(cached::hit_response(entry, similarity, request_id));
        }
    }

    // Targets in order: the routed model, then its fallbacks (rule, request body, alias), then
    // the routed model again on the key's remaining weighted providers. Each gets its own
    // admission (limits are re-applied) and its own retries.
    let mut targets: Vec<(&str, bool)> = vec![(&*routed_model, routed_by_policy)];
    for f in &fallbacks {
        // The client's own fallbacks must be models its key may use; policy's are trusted.
        let from_client = head.fallbacks.iter().any(|b| b == f);
        if from_client && check_model(plan, key, f).is_err() {
            continue;
        }
        targets.push((&**f, !from_client));
    }
    // Providers with an open circuit start out excluded (except as probes); if that leaves
    // nothing, health is ignored rather than refusing the request.
    let mut primary_tried = gw.unhealthy(plan, fastrand::f64());
    let skipped_unhealthy = primary_tried.len();
    let mut last_error = None;
    // The provider whose attempts all failed, until the request moves on (for the metric).
    let mut failed_on: Option<&std::sync::Arc<str>> = None;
    // A `provider/model` primary names its one provider: past the list there is no other.
    let mut primary_pinned = false;
    let mut step = 0;
    loop {
        let (model, from_policy, excluded) = if step < targets.len() {
            let (m, p) = targets[step];
            (
                m,
                p,
                if step == 0 {
                    &primary_tried[..]
                } else {
                    &[][..]
                },
            )
        } else if primary_pinned {
            // (Routing ignores exclusions for a pinned model: admitting it again would retry
            // the same provider for ever.)
            break;
        } else {
            (targets[0].0, targets[0].1, &primary_tried[..])
        };
        let target = Target {
            model,
            from_policy,
            already_tried: excluded,
        };
        let admission = match admit(plan, key, &view, target, now, gw.ledger(plan)).await {
            Ok(a) => a,
            Err(_)
                if step == 0
                    && skipped_unhealthy > 0
                    && primary_tried.len() == skipped_unhealthy =>
            {
                primary_tried.clear();
                continue;
            }
            // The primary's own refusal is the answer; a fallback's just ends that fallback.
            Err(e) if step == 0 => return Err(e),
            Err(e) => {
                last_error = Some(last_error.unwrap_or(e));
                if step >= targets.len() {
                    break;
                }
                step += 1;
                continue;
            }
        };
        if step == 0 || step >= targets.len() {
            primary_tried.push(admission.route.provider_index);
        }
        if step == 0 {
            primary_pinned = admission.route.pinned;
        }
        let provider = admission.route.provider;
        if let Some(from) = failed_on.take() {
            gw.metrics.record_fallback(from, &provider.name);
        }
        let route_call = RouteCall {
            endpoint,
            head: &head,
            body: &body,
            client: format.native_wire(endpoint).map(|format| ClientBytes {
                format,
                body: &client_body,
            }),
            client_headers: &parts.headers,
            view: &view,
            request_id,
            now,
            redacted_messages: redacted_messages.as_deref(),
            health: plan.health.provider(admission.route.provider_index),
        };
        match serve_route(gw, key, admission, route_call, attempts, served).await {
            Ok(answer) => return answer,
            Err(exhausted) => {
                last_error = Some(exhausted);
                failed_on = Some(&provider.name);
            }
        }
        // Past the list, keep trying the primary on providers not yet tried; `admit` fails
        // (ending the loop) once none is left.
        if step < targets.len() {
            step += 1;
        }
    }
    Err(last_error.unwrap_or_else(|| {
        ApiError::new(
            ErrorType::UpstreamError,
            "no provider could serve the request",
        )
    }))
}

/// What `serve_route` needs of the request.
struct RouteCall<'a, 'b> {
    endpoint: Endpoint,
    head: &'a RequestHead<'b>,
    body: &'a Bytes,
    /// The client's own bytes, for a client of a format a provider may also speak.
    client: Option<ClientBytes<'a>>,
    client_headers: &'a HeaderMap,
    view: &'a ProxyView<'a>,
    request_id: &'a HeaderValue,
    now: i64,
    redacted_messages: Option<&'a str>,
    /// The provider's and its keys' health trackers, from the request's plan.
    health: Option<&'a ProviderHealth>,
}

/// Carries one admitted route to an answer. `Ok(..)`: the answer for the client (a success,
/// a passed-through client error, or a final refusal); `Err`: every attempt on this route
/// failed, and the caller may try a fallback.
async fn serve_route<'p>(
    gw: &Gateway,
    key: &'p KeyPlan,
    admission: Admission<'p, '_>,
    call: RouteCall<'_, '_>,
    attempts: &mut Attempts,
    served: &mut Served,
) -> Result<Result<ProxyResponse, ApiError>, ApiError> {
    let Admission {
        route,
        mut admitted,
        prompt_tokens,
    } = admission;
    admitted.report_to(served.settled.clone());
    let RouteCall {
        endpoint,
        head,
        body,
        client,
        client_headers,
        view,
        request_id,
        now,
        redacted_messages,
        health,
    } = call;
    let headroom = admitted.tightest(now);
    if admitted.price.is_none() {
        gw.metrics
            .unpriced_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    served.provider = Some(route.provider.name.clone());
    let provider = route.provider;

    let uri = match provider.urls.for_request(
        matches!(endpoint, Endpoint::Embeddings),
        head.stream,
        route.model,
    ) {
        Ok(uri) => uri,
        Err(msg) => {
            admitted.settle(None);
            served.model = route.model.to_string();
            return Ok(Err(ApiError::new(
                ErrorType::InvalidRequest,
                format!("provider `{}`: {msg}", provider.name),
            )));
        }
    };
    let edited = redacted_messages.is_some()
        || served.store_as.is_some()
        || outbound::has_output_guardrails(key, endpoint);
    let native = native::route(client, provider.wire, edited);
    let upstream_body = match native {
        Some(client) => native::request_body(client, provider.wire, route.model),
        None => provider_request::body_for(
            provider,
            endpoint,
            head,
            body,
            route.model,
            redacted_messages,
        ),
    };
    let upstream_body = match upstream_body {
        Ok(b) => b,
        Err(e) => {
            admitted.settle(None);
            served.model = route.model.to_string();
            return Ok(Err(e));
        }
    };
    if gw.request_log.keeps_bodies() {
        served.bodies = Some((upstream_body.clone(), None));
    }
    let openai_wire = provider.wire == ProviderWire::OpenAi;
    let foreign = provider_request::foreign_format(provider.wire);
    let upstream_request = UpstreamRequest {
        provider,
        uri,
        body: upstream_body,
        client_headers,
        // The provider's spans join the request's trace, under the gateway's span.
        traceparent: served
            .trace
            .and_then(|t| HeaderValue::from_str(&t.header_for(&t.span_id)).ok()),
    };
    let build = |key: Option<&ProviderKeyPlan>| upstream_request.build(key);

    let first_sent = Instant::now();
    let sent = send_with_retries(
        gw,
        provider,
        health,
        route.model,
        route.provider_key,
        &build,
        attempts,
    )
    .await;
    let (upstream_resp, attempt_started, answer_key) = match sent {
        Ok(answer) => answer,
        Err(exhausted) => {
            admitted.settle(None);
            served.upstream_wait = first_sent.elapsed();
            let kind = if exhausted.timed_out {
                ErrorType::UpstreamTimeout
            } else {
                ErrorType::UpstreamError
            };
            return Err(ApiError::new(kind, exhausted.last_error)
                .with("attempts", serde_json::Value::Array(attempts.0.clone())));
        }
    };
    let deadline = attempt_started + provider.timeouts.total;
    let attempt = |status: Option<u16>, error: &str| {
        let mut all = attempts.0.clone();
        all.push(serde_json::json!({
            "provider": &*provider.name,
            "model": route.model,
            "key": answer_key.as_deref().unwrap_or(""),
            "status": status,
            "error": error,
            "duration_ms": attempt_started.elapsed().as_millis() as u64,
        }));
        serde_json::Value::Array(all)
    };
    let status = upstream_resp.status();
    let (up_parts, up_body) = upstream_resp.into_parts();

    // Named after the gateway's request id where the provider's answer names none (Bedrock).
    let answer_id = if openai_wire {
        String::new()
    } else {
        format!("chatcmpl-{}", request_id.to_str().unwrap_or_default())
    };
    let relay = head.stream && status.is_success();
    served.stream = relay;
    let by = Answerer {
        provider: &provider.name,
        model: route.model,
    };
    let body = if relay {
        served.upstream_wait = first_sent.elapsed();
        served.answered = Some((attempt_started, attempt_started.elapsed()));
        let guard = outbound::stream_guard(gw, key, endpoint, view, by, prompt_tokens);
        let up_body = if openai_wire || native.is_some() {
            UpstreamStream::plain(up_body)
        } else {
            UpstreamStream::translated(up_body, foreign, now, (&answer_id, route.model))
        };
        let relay = ProxyBody::Relay(Box::new(
            Relay::new(
                up_body,
                Some(admitted),
                prompt_tokens,
                !head.client_wants_usage,
                StreamBounds {
                    provider: provider.name.clone(),
                    deadline: deadline.into(),
                    total: provider.timeouts.total,
                    idle: provider.timeouts.stream_idle,
                },
            )
            .with_rewrite(guard)
            .with_shadow(native.map(|c| Shadow::new(c.format, now))),
        ));
        match &served.store_as {
            Some(to) => ProxyBody::Recording(Box::new(Recording::new(
                relay,
                to.clone(),
                (&provider.name, route.model),
            ))),
            None => relay,
        }
    } else {
        let collected = tokio::time::timeout_at(
            deadline.into(),
            http_body_util::Limited::new(up_body, MAX_UPSTREAM_BODY).collect(),
        )
        .await;
        served.upstream_wait = first_sent.elapsed();
        served.answered = Some((attempt_started, attempt_started.elapsed()));
        let bytes = match collected {
            Err(_) => {
                // The provider produced (and likely billed) part of an answer: charge the
                // estimate rather than nothing.
                drop(admitted);
                return Err(timeout_error(
                    provider,
                    attempt(Some(status.as_u16()), "timeout reading body"),
                ));
            }
            Ok(Err(e)) => {
                drop(admitted);
                let msg = format!("reading the response failed: {e}");
                return Err(ApiError::new(
                    ErrorType::UpstreamError,
                    format!("provider `{}`: {msg}", provider.name),
                )
                .with("attempts", attempt(Some(status.as_u16()), &msg)));
            }
            Ok(Ok(c)) => c.to_bytes(),
        };
        // From here on the answer is OpenAI JSON, whatever the provider speaks, unless it
        // passes to a client of the provider's format untouched.
        let bytes = if openai_wire || native.is_some() {
            bytes
        } else if status.is_success() {
            let created = u64::try_from(now).unwrap_or(0);
            let answer = if matches!(endpoint, Endpoint::Embeddings) {
                // (Gemini or Bedrock.) Where the provider counts no tokens, the answer
                // carries the gateway's estimate, which is then settled like reported usage.
                let estimate = view.estimated_prompt_tokens();
                let answer = (&bytes[..], &up_parts.headers);
                translated::openai_embeddings_answer(foreign, answer, body, route.model, estimate)
            } else {
                translated::openai_answer(foreign, &bytes, created, (&answer_id, route.model))
            };
            match answer {
                Ok(b) => b,
                Err(msg) => {
                    // The provider answered (and likely billed): charge the estimate.
                    drop(admitted);
                    return Err(ApiError::new(
                        ErrorType::UpstreamError,
                        format!("provider `{}`: {msg}", provider.name),
                    )
                    .with("attempts", attempt(Some(status.as_u16()), &msg)));
                }
            }
        } else {
            let aws_error_type = up_parts
                .headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok());
            translated::openai_error(status, &bytes, aws_error_type)
        };
        let usage = match native {
            _ if !status.is_success() => None,
            Some(c) => native::answer_usage(c.format, &bytes, now),
            None => usage_of(&bytes),
        };
        if native.is_some() && status.is_success() && usage.is_none() {
            // Passed on, but unreadable here: charge the estimate.
            drop(admitted);
        } else {
            admitted.settle(usage);
        }
        // An output guardrail's refusal is final: no fallback for a policy decision.
        let (bytes, answer_flags) =
            match outbound::check_answer(gw, key, endpoint, status, view, by, bytes).await {
                Ok(checked) => checked,
                Err(e) => return Ok(Err(e)),
            };
        served.flags.extend(answer_flags);
        if let Some((_, answer)) = &mut served.bodies {
            *answer = Some(bytes.clone());
        }
        if let (Some(to), true) = (&served.store_as, status.is_success()) {
            let u = usage.unwrap_or_default();
            let usage = CachedUsage {
                prompt_tokens: u.prompt,
                completion_tokens: u.completion,
            };
            cached::store_whole(
                to,
                status.as_u16(),
                bytes.clone(),
                usage,
                (&provider.name, route.model),
            );
        }
        ProxyBody::full(bytes)
    };
    served.model = route.model.to_string();

    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    copy_response_headers(&up_parts.headers, resp.headers_mut());
    if native.is_some() {
        resp.extensions_mut().insert(NativeAnswer);
    }
    let h = resp.headers_mut();
    if served.stream && !openai_wire {
        // Translated to OpenAI SSE, whatever framing the provider used (Bedrock's is binary).
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
    }
    h.insert(REQUEST_ID, request_id.clone());
    insert_str(h, "x-tollgate-provider", &provider.name);
    insert_str(h, "x-tollgate-model", route.model);
    h.insert(
        "x-tollgate-attempts",
        HeaderValue::from(attempts.count() + 1),
    );
    insert_ratelimit_headers(h, headroom);
    h.insert(
        CACHE_HEADER,
        HeaderValue::from_static(served.cache.as_str()),
    );
    if !served.flags.is_empty() {
        let names: Vec<&str> = served.flags.iter().map(|f| &**f).collect();
        insert_str(h, "x-tollgate-guardrail-flags", &names.join(","));
    }
    Ok(Ok(resp))
}

fn timeout_error(provider: &ProviderPlan, attempts: serde_json::Value) -> ApiError {
    ApiError::new(
        ErrorType::UpstreamTimeout,
        format!(
            "provider `{}` did not answer within {} ms (timeout)",
            provider.name,
            provider.timeouts.total.as_millis()
        ),
    )
    .with("attempts", attempts)
}

/// The provider's own error message when it sent one in the OpenAI shape, else the body start.
pub(super) fn upstream_error_message(body: &Bytes) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if let Some(msg) = parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/message"))
        .and_then(|m| m.as_str())
    {
        return msg.to_string();
    }
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}
