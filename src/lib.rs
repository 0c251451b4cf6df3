//! Janus-Q operator: takes an event-driven trading model (arXiv:2602.19919) from research to
//! paper trading to a gated live canary. The domain modules are sans-IO and know nothing of
//! Kubernetes; `cli` maps the `janus` subcommands onto them.

pub mod admission;
pub mod audit;
pub mod cli;
pub mod config;
pub mod contracts;
pub mod controller;
pub mod crd;
pub mod evaluation;
pub mod gates;
pub mod http_server;
pub mod identity;
pub mod labeling;
pub mod operator;
pub mod promotion;
pub mod records;
pub mod reward;
pub mod reward_service;
pub mod rng;
pub mod runtime;
pub mod scenario;
pub mod serve;
pub mod taxonomy;
pub mod text;
pub mod training;

/// This build's version as `janus --version` prints it: the package version and the git commit
/// it was built from (`<version> (git <commit>)`), recorded in every artifact's lineage.
pub fn version_string() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (git ",
        env!("JANUS_GIT_COMMIT"),
        ")"
    )
}
