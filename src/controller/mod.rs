//! The operator's reconcilers. Their decisions are plain functions (this module's submodules)
//! over the resources and the domain; the Kubernetes glue that reads inputs and applies the
//! results is the only part that talks to the API server.

pub mod audit;
pub mod candidate;
pub mod jobs;
pub mod promotion;
pub mod run;
pub mod unreadable;
