//! The decision service's pieces. For now: running an exported policy through ONNX Runtime.

pub mod onnx;
