//! `skiff`: an AF_XDP traffic generator, sink and veth testbed.
#![deny(unsafe_code)]

mod bench;
mod child;
mod common;
mod datapath;
mod demo;
mod gen;
mod hash;
mod hist;
mod impair;
mod latbench;
mod latency;
mod ping;
mod plot;
mod profile;
mod reflect;
mod sink;
mod stream;
mod tcp;
mod testbed;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "skiff",
    version,
    about = "AF_XDP kernel-bypass packet engine: generator, sink, veth testbed"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create a veth testbed, run sink and generator across it, report, remove it.
    Demo(demo::DemoArgs),
    /// Manage the veth/network-namespace testbed.
    #[command(subcommand)]
    Testbed(testbed::TestbedCmd),
    /// Generate traffic from AF_XDP sockets: templates, variation, IMIX, qdiscs and rates, pcap replay, profiles.
    Gen(Box<gen::GenArgs>),
    /// Receive and count on AF_XDP sockets; decodes latency probes (one-way latency, loss, reordering).
    Sink(sink::SinkArgs),
    /// Send latency probes back to their sender (AF_XDP, XDP_TX or a kernel socket).
    Reflect(reflect::ReflectArgs),
    /// Round-trip latency to a reflector: probes on a rate schedule, HdrHistogram percentiles.
    Ping(ping::PingArgs),
    /// Read HdrHistogram interval logs of one or several runs or hosts: show, merge, plot.
    #[command(subcommand)]
    Hist(hist::HistCmd),
    /// End-to-end benchmarks against a named baseline, measured in the same run.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Flow hash of one flow (Toeplitz RSS or cheap), the worker RPS steers it to, its RSS queue.
    Hash(hash::HashArgs),
    /// Random loss and reordering on an interface's ingress (XDP) or egress (tcx), for tests
    /// (netem's loss and reorder where sch_netem is missing).
    Impair(impair::ImpairArgs),
    /// Userspace TCP over AF_XDP: bulk transfers like iperf (send to / receive from any TCP).
    #[command(subcommand)]
    Tcp(tcp::TcpCmd),
}

fn main() {
    let cli = Cli::parse();
    let json = match &cli.cmd {
        Cmd::Gen(a) => a.dp.json,
        Cmd::Sink(a) => a.dp.json,
        Cmd::Reflect(a) => a.dp.json,
        Cmd::Ping(a) => a.dp.json,
        Cmd::Impair(a) => a.dp.json,
        _ => false,
    };
    let result = match cli.cmd {
        Cmd::Demo(a) => demo::run(a),
        Cmd::Testbed(c) => testbed::run(c),
        Cmd::Gen(a) => gen::run(*a).and_then(|r| {
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                gen::print_text(&r);
            }
            Ok(())
        }),
        Cmd::Sink(a) => sink::run(a).and_then(|r| {
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                sink::print_text(&r);
            }
            Ok(())
        }),
        Cmd::Reflect(a) => reflect::run(a).and_then(|r| {
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                reflect::print_text(&r);
            }
            Ok(())
        }),
        Cmd::Ping(a) => ping::run(a).and_then(|r| {
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                ping::print_text(&r);
            }
            Ok(())
        }),
        Cmd::Hist(c) => hist::run(c),
        Cmd::Bench(c) => bench::run(c),
        Cmd::Hash(a) => hash::run(a),
        Cmd::Impair(a) => impair::run(a).and_then(|r| {
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                impair::print_text(&r);
            }
            Ok(())
        }),
        Cmd::Tcp(c) => tcp::run(c),
    };
    if let Err(e) = result {
        eprintln!("skiff: error: {e:#}");
        std::process::exit(1);
    }
}
