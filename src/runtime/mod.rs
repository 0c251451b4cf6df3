//! The decision service's pieces: the runtime configuration it obeys, the decision rules, the
//! first answers kept against duplicate events, running an exported policy through ONNX
//! Runtime, and the statistics it records of itself.

pub mod config;
pub mod decision;
pub mod dedup;
pub mod guard;
pub mod onnx;
pub mod stats;
