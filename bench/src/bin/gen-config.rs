//! `gen-config`: writes a realistic benchmark config and the matching `loadgen run --keys-file`.
//!
//! ```text
//! gen-config --out FILE --keys-out FILE [--keys 1000] [--teams 50] [--customers 10] [--rules 100]
//!            [--upstream http://127.0.0.1:9000/v1] [--listen 127.0.0.1:0]
//!            [--admin-listen 127.0.0.1:0] [--policy full|keys] [--logs sqlite|none]
//! ```
//!
//! `--policy full` (the default) adds memory state, limits on every tier, `--rules` routing rules and
//! 5 guardrails; `--policy keys` writes providers, customers, teams and keys only. `--logs`
//! (default `sqlite`, the gateway's own default) keeps or turns off the request log.

use std::process::ExitCode;
use tollgate_bench::{generate, Policy, Spec};

const USAGE: &str = "usage: gen-config --out FILE --keys-out FILE [--keys N] [--teams N] \
[--customers N] [--rules N] [--upstream URL] [--listen ADDR] [--admin-listen ADDR] [--policy full|keys] [--logs sqlite|none]";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-config: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut spec = Spec::default();
    let (mut out, mut keys_out) = (None, None);
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let count = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag} takes a whole number, got `{v}`"))
        };
        match flag.as_str() {
            "--out" => out = Some(value()?),
            "--keys-out" => keys_out = Some(value()?),
            "--keys" => spec.keys = count(value()?)?,
            "--teams" => spec.teams = count(value()?)?,
            "--customers" => spec.customers = count(value()?)?,
            "--rules" => spec.rules = count(value()?)?,
            "--upstream" => spec.upstream = value()?,
            "--listen" => spec.listen = value()?,
            "--admin-listen" => spec.admin_listen = value()?,
            "--policy" => {
                spec.policy = match value()?.as_str() {
                    "full" => Policy::Full,
                    "keys" => Policy::KeysOnly,
                    other => return Err(format!("--policy is `full` or `keys`, not `{other}`")),
                }
            }
            "--logs" => {
                spec.request_log = match value()?.as_str() {
                    "sqlite" => true,
                    "none" => false,
                    other => return Err(format!("--logs is `sqlite` or `none`, not `{other}`")),
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let out = out.ok_or("--out is required")?;
    let keys_out = keys_out.ok_or("--keys-out is required")?;
    let generated = generate(&spec);
    std::fs::write(&out, &generated.yaml).map_err(|e| format!("cannot write {out}: {e}"))?;
    std::fs::write(&keys_out, generated.keys_file())
        .map_err(|e| format!("cannot write {keys_out}: {e}"))?;
    println!(
        "wrote {out} ({} virtual keys, {} teams, {} customers, {} policy) and {keys_out}",
        spec.keys,
        spec.teams,
        spec.customers,
        match spec.policy {
            Policy::Full => "full",
            Policy::KeysOnly => "keys-only",
        }
    );
    Ok(())
}
