//! Evaluation (DESIGN §3.4-3.5): the paper's metrics with its exact conventions, and the
//! bootstrap significance the paper lacks.

pub mod bootstrap;
pub mod metrics;
