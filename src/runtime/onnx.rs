//! Running an exported policy through ONNX Runtime (the `ort` crate, loading the library at run
//! time). The library is the one named by `ORT_DYLIB_PATH`, or else the one inside the Python
//! `onnxruntime` package that `tests/setup` installs.

use ort::session::Session;
use ort::value::TensorRef;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Where the ONNX Runtime shared library is.
pub fn library_path() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return Ok(PathBuf::from(p));
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['platlib'])",
        ])
        .output()
        .map_err(|e| {
            format!("ORT_DYLIB_PATH is not set and python3 cannot be run to find onnxruntime: {e}")
        })?;
    let site = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let capi = site.join("onnxruntime/capi");
    let found = std::fs::read_dir(&capi).ok().and_then(|entries| {
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libonnxruntime.so"))
            })
            .min()
    });
    found.ok_or_else(|| {
        format!(
            "no ONNX Runtime library: set ORT_DYLIB_PATH, or run tests/setup (it installs the onnxruntime wheel; looked in {})",
            capi.display()
        )
    })
}

static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

fn environment() -> Result<&'static ort::environment::Environment, String> {
    ENVIRONMENT
        .get_or_init(|| {
            let path = library_path()?;
            ort::init_from(&path)
                .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?
                .with_name("janus")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The four heads' outputs for a batch, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyOutputs {
    pub direction: Vec<f32>,
    pub event_type: Vec<f32>,
    pub strength: Vec<f32>,
    pub car: Vec<f32>,
}

/// A loaded policy graph.
pub struct OnnxPolicy {
    session: Session,
    dim: usize,
}

impl OnnxPolicy {
    /// Loads the model bytes; `dim` is the feature dimension the graph expects.
    pub fn load(model: &[u8], dim: usize) -> Result<Self, String> {
        let env = environment()?;
        let session = Session::builder(env)
            .and_then(|mut b| b.commit_from_memory(model))
            .map_err(|e| format!("ONNX Runtime refused the model: {e}"))?;
        Ok(Self { session, dim })
    }

    /// Loads the model bytes, reading the feature dimension from its `features` input. The
    /// graph must say it was trained on the features this build computes.
    pub fn load_inferring_dim(model: &[u8]) -> Result<Self, String> {
        use crate::training::features::FEATURES_VERSION;
        use crate::training::onnx::FEATURES_METADATA_KEY;
        let env = environment()?;
        let session = Session::builder(env)
            .and_then(|mut b| b.commit_from_memory(model))
            .map_err(|e| format!("ONNX Runtime refused the model: {e}"))?;
        let features = session
            .metadata()
            .ok()
            .and_then(|m| m.custom(FEATURES_METADATA_KEY));
        if features.as_deref() != Some(FEATURES_VERSION) {
            return Err(format!(
                "the model was trained on features `{}`, but this service computes `{FEATURES_VERSION}`: retrain it",
                features.as_deref().unwrap_or("(not recorded)")
            ));
        }
        let dim = session
            .inputs()
            .iter()
            .find(|i| i.name() == "features")
            .and_then(|i| i.dtype().tensor_shape().and_then(|s| s.last().copied()))
            .filter(|d| *d > 0)
            .ok_or("the model has no `features` input of a known width")?;
        Ok(Self {
            session,
            dim: dim as usize,
        })
    }

    /// The feature dimension the graph expects.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The greedy prediction for one event's features (the same reading of the heads as the
    /// trainer's own `PolicyModel::predict`).
    pub fn predict(
        &mut self,
        features: &[f32],
    ) -> Result<crate::contracts::label::Prediction, String> {
        use crate::training::policy::{DIRECTIONS, STRENGTHS, argmax};
        let out = self.run(features, 1)?;
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if out.direction.len() != 3
            || out.event_type.len() != 10
            || out.strength.len() != 2
            || out.car.len() != 1
            || !finite(&out.direction)
            || !finite(&out.event_type)
            || !finite(&out.strength)
            || !finite(&out.car)
        {
            return Err("the model's outputs have the wrong shape or are not finite".into());
        }
        Ok(crate::contracts::label::Prediction {
            direction: DIRECTIONS[argmax(&out.direction)],
            event_type: Some(crate::taxonomy::EventType::KNOWN[argmax(&out.event_type)]),
            strength: STRENGTHS[argmax(&out.strength)],
            car_estimate: out.car[0] as f64,
        })
    }

    /// Runs a batch of dense feature rows (`rows × dim`).
    pub fn run(&mut self, features: &[f32], rows: usize) -> Result<PolicyOutputs, String> {
        if features.len() != rows * self.dim {
            return Err(format!(
                "{} feature values for {rows} rows of {}",
                features.len(),
                self.dim
            ));
        }
        let input = TensorRef::from_array_view(([rows, self.dim], features))
            .map_err(|e| format!("bad input tensor: {e}"))?;
        let outputs = self
            .session
            .run(ort::inputs!["features" => input])
            .map_err(|e| format!("inference failed: {e}"))?;
        let take = |name: &str| -> Result<Vec<f32>, String> {
            let (_, data) = outputs[name]
                .try_extract_tensor::<f32>()
                .map_err(|e| format!("output {name}: {e}"))?;
            Ok(data.to_vec())
        };
        Ok(PolicyOutputs {
            direction: take("direction")?,
            event_type: take("event_type")?,
            strength: take("strength")?,
            car: take("car")?,
        })
    }
}
