//! `gen-config`: writes a realistic benchmark config and the matching `loadgen run --keys-file`.
//!
//! ```text
//! gen-config --out FILE --keys-out FILE [--keys 1000] [--teams 50] [--customers 10]
//!            [--upstream http://127.0.0.1:9000/v1] [--listen 127.0.0.1:0]
//!            [--admin-listen 127.0.0.1:0]
//! ```

use std::process::ExitCode;
use tollgate_bench::{generate, Spec};

const USAGE: &str = "usage: gen-config --out FILE --keys-out FILE [--keys N] [--teams N] \
[--customers N] [--upstream URL] [--listen ADDR] [--admin-listen ADDR]";

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
            "--upstream" => spec.upstream = value()?,
            "--listen" => spec.listen = value()?,
            "--admin-listen" => spec.admin_listen = value()?,
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
        "wrote {out} ({} virtual keys, {} teams, {} customers) and {keys_out}",
        spec.keys, spec.teams, spec.customers
    );
    Ok(())
}
