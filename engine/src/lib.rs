//! Tollgate: a self-hosted AI gateway whose policies are code.
//!
//! The request path mirrors the module layout: `config` (what the user wrote) is compiled by
//! `compile` into a `plan::Plan`; `admission` decides per request over that plan; `proxy`
//! carries the call upstream; `telemetry` counts what happened; `reqlog` keeps a record of
//! every request.

pub mod admission;
pub mod aws;
pub mod cache;
pub mod cli;
pub mod compile;
pub mod config;
pub mod error;
pub mod guardrails;
pub mod mcp;
pub mod plan;
pub mod policy;
pub mod pricing;
pub mod proxy;
pub mod reliability;
pub mod reqlog;
pub mod state;
pub mod telemetry;
pub mod translate;
