//! `loadgen run`: open-loop load generator.

use clap::Args;

#[derive(Args, Debug)]
pub struct RunArgs {}

pub fn main(_args: RunArgs) -> anyhow::Result<bool> {
    anyhow::bail!("not yet")
}
