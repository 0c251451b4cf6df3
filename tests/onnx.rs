//! The exported ONNX graph computes the trainer's own forward pass (through ONNX Runtime).

use janus::contracts::label::{Label, Sign, Strength};
use janus::runtime::onnx::OnnxPolicy;
use janus::taxonomy::EventType;
use janus::training::Example;
use janus::training::features::{Sparse, dimension, encode};
use janus::training::onnx::{dense, export};
use janus::training::policy::PolicyModel;
use janus::training::sft::{SftConfig, train};

#[test]
fn onnx_runtime_matches_the_trainers_forward_pass() {
    // A trained model (so weights are not just the initialization).
    let titles = [
        "分红 大幅增长",
        "处罚 违规 亏损",
        "rating upgraded",
        "减持 公告",
        "中标 合同",
        "诉讼 进展",
    ];
    let mut examples = Vec::new();
    for i in 0..400 {
        let t = EventType::KNOWN[i % 10];
        let car = if i % 3 == 0 { -0.03 } else { 0.025 };
        examples.push(Example {
            event_id: format!("e{i}"),
            x: encode("600000.SH", titles[i % titles.len()], 512),
            label: Label {
                car,
                direction: if car > 0.0 {
                    Sign::Positive
                } else {
                    Sign::Negative
                },
                strength: Strength::Strong,
                event_type: t,
            },
            known_on: chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()
                + chrono::Days::new(i as u64),
        });
    }
    let (model, _) = train(
        &examples,
        &SftConfig {
            epochs: 2,
            ..SftConfig::default()
        },
    );
    let untrained = PolicyModel::init(512, 32, 0.03, 3);
    for model in [model, untrained] {
        let bytes = export(&model);
        let dim = dimension(model.buckets);
        let mut onnx = OnnxPolicy::load(&bytes, dim).unwrap();
        let rows: Vec<&Sparse> = examples.iter().take(64).map(|e| &e.x).collect();
        let out = onnx.run(&dense(&rows, dim), rows.len()).unwrap();
        let mut worst = 0.0f32;
        for (r, x) in rows.iter().enumerate() {
            let f = model.forward(x);
            let pairs = f
                .direction
                .iter()
                .zip(&out.direction[r * 3..r * 3 + 3])
                .chain(
                    f.event_type
                        .iter()
                        .zip(&out.event_type[r * 10..r * 10 + 10]),
                )
                .chain(f.strength.iter().zip(&out.strength[r * 2..r * 2 + 2]))
                .chain(std::iter::once((&f.car, &out.car[r])));
            for (a, b) in pairs {
                worst = worst.max((a - b).abs());
            }
        }
        eprintln!("largest |ONNX − trainer| over 64 events: {worst:e}");
        assert!(worst <= 1e-5, "largest difference {worst}");
    }
}

#[test]
fn bad_model_bytes_are_refused_not_crashing() {
    let err = OnnxPolicy::load(b"not an onnx model", 10).err().unwrap();
    assert!(err.contains("ONNX Runtime refused the model"), "{err}");
}

#[test]
fn a_graph_trained_on_other_features_is_refused() {
    use janus::training::features::FEATURES_VERSION;
    use janus::training::onnx::export_stamped;
    let model = PolicyModel::init(64, 4, 0.03, 3);
    let current = OnnxPolicy::load_inferring_dim(&export(&model)).unwrap();
    assert_eq!(current.dim(), dimension(64));
    assert_eq!(FEATURES_VERSION, "janus-features-v3");
    // Bias and 64 buckets: the event type label is not an input (issue 17).
    assert_eq!(current.dim(), 1 + 64);
    for (stamp, says) in [
        (Some("janus-features-v1"), "`janus-features-v1`"),
        (Some("janus-features-v2"), "`janus-features-v2`"),
        (None, "(not recorded)"),
    ] {
        let err = OnnxPolicy::load_inferring_dim(&export_stamped(&model, stamp))
            .err()
            .unwrap();
        assert!(err.contains(says) && err.contains("retrain it"), "{err}");
    }
}
