//! Evaluation (DESIGN §3.4-3.5): the paper's backtest and metrics with its exact conventions,
//! the deterministic baseline, and the rigor the paper lacks (walk-forward, regimes,
//! bootstrap significance, calibration, replay comparison).

pub mod backtest;
pub mod baseline;
pub mod bootstrap;
pub mod charts;
pub mod diagnostics;
pub mod metrics;
pub mod present;
pub mod replay;
pub mod report;
