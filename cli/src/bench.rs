//! `skiff bench`: end-to-end benchmarks (filled in below).
use anyhow::Result;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Single-queue TX into a veth whose peer drops with XDP: skiff vs trafgen.
    TxOnly,
}

pub fn run(_c: BenchCmd) -> Result<()> {
    anyhow::bail!("not yet")
}
