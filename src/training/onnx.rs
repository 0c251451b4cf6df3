//! Export of the reference policy to ONNX (IR 8, opset 13), written with a small protobuf
//! encoder so no code generator is needed. The graph takes the dense feature matrix
//! `features` [N, dim] and returns `direction` [N, 3], `event_type` [N, 10], `strength` [N, 2]
//! (softmax probabilities) and `car` [N, 1] (ĉ), computing exactly the reference forward pass:
//! Tanh(Gemm(features, W1, b1)) then one Gemm per head.

use super::policy::PolicyModel;

/// ONNX `TensorProto.DataType.FLOAT`.
const FLOAT: u64 = 1;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn int(out: &mut Vec<u8>, field: u64, v: u64) {
    key(out, field, 0);
    varint(out, v);
}

fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    key(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn string(out: &mut Vec<u8>, field: u64, s: &str) {
    bytes(out, field, s.as_bytes());
}

fn message(out: &mut Vec<u8>, field: u64, build: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    build(&mut inner);
    bytes(out, field, &inner);
}

/// TensorProto with float data.
fn tensor(name: &str, dims: &[usize], data: &[f32]) -> Vec<u8> {
    let mut t = Vec::with_capacity(data.len() * 4 + 64);
    for d in dims {
        int(&mut t, 1, *d as u64);
    }
    int(&mut t, 2, FLOAT);
    string(&mut t, 8, name);
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    bytes(&mut t, 9, &raw);
    t
}

/// ValueInfoProto of a float matrix with a symbolic batch dimension.
fn value_info(name: &str, columns: usize) -> Vec<u8> {
    let mut v = Vec::new();
    string(&mut v, 1, name);
    message(&mut v, 2, |ty| {
        message(ty, 1, |tensor_type| {
            int(tensor_type, 1, FLOAT);
            message(tensor_type, 2, |shape| {
                message(shape, 1, |d| string(d, 2, "batch"));
                message(shape, 1, |d| int(d, 1, columns as u64));
            });
        });
    });
    v
}

fn node(
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    name: &str,
    int_attrs: &[(&str, i64)],
) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        string(&mut n, 1, i);
    }
    for o in outputs {
        string(&mut n, 2, o);
    }
    string(&mut n, 3, name);
    string(&mut n, 4, op);
    for (attr, v) in int_attrs {
        message(&mut n, 5, |a| {
            string(a, 1, attr);
            int(a, 3, *v as u64);
            int(a, 20, 2); // AttributeType INT
        });
    }
    n
}

/// The ONNX metadata key naming the feature encoding a graph was trained on.
pub const FEATURES_METADATA_KEY: &str = "janus.features";

/// The ONNX model bytes of `model`, stamped with the feature encoding it was trained on.
pub fn export(model: &PolicyModel) -> Vec<u8> {
    export_stamped(model, Some(super::features::FEATURES_VERSION))
}

/// The same graph stamped with another feature encoding, or none (as graphs written before
/// the stamp existed): what a service must refuse. For tests and migration tools.
pub fn export_stamped(model: &PolicyModel, features: Option<&str>) -> Vec<u8> {
    let l = model.layout();
    let p = &model.params;
    let mut graph = Vec::new();
    let heads = [
        ("direction", 0usize),
        ("event_type", 1),
        ("strength", 2),
        ("car_raw", 3),
    ];
    // Nodes.
    message(&mut graph, 1, |n| {
        n.extend(node(
            "Gemm",
            &["features", "w1", "b1"],
            &["hidden_pre"],
            "hidden_gemm",
            &[],
        ))
    });
    message(&mut graph, 1, |n| {
        n.extend(node(
            "Tanh",
            &["hidden_pre"],
            &["hidden"],
            "hidden_tanh",
            &[],
        ))
    });
    for (name, k) in heads {
        let logits = format!("{name}_logits");
        let out = if k == 3 {
            name.to_string()
        } else {
            logits.clone()
        };
        let (w, b) = (format!("w_{name}"), format!("b_{name}"));
        message(&mut graph, 1, |n| {
            n.extend(node(
                "Gemm",
                &["hidden", &w, &b],
                &[&out],
                &format!("{name}_gemm"),
                &[],
            ))
        });
        if k < 3 {
            message(&mut graph, 1, |n| {
                n.extend(node(
                    "Softmax",
                    &[&logits],
                    &[name],
                    &format!("{name}_softmax"),
                    &[("axis", 1)],
                ))
            });
        }
    }
    message(&mut graph, 1, |n| {
        n.extend(node(
            "Mul",
            &["car_raw", "car_scale"],
            &["car"],
            "car_scale_mul",
            &[],
        ))
    });
    string(&mut graph, 2, "janus_reference_policy");
    // Initializers.
    message(&mut graph, 5, |t| {
        t.extend(tensor("w1", &[l.dim, l.hidden], &p[l.w1..l.b1]))
    });
    message(&mut graph, 5, |t| {
        t.extend(tensor("b1", &[l.hidden], &p[l.b1..l.b1 + l.hidden]))
    });
    for (name, k) in heads {
        let (w, b, n) = l.heads[k];
        message(&mut graph, 5, |t| {
            t.extend(tensor(&format!("w_{name}"), &[l.hidden, n], &p[w..b]))
        });
        message(&mut graph, 5, |t| {
            t.extend(tensor(&format!("b_{name}"), &[n], &p[b..b + n]))
        });
    }
    message(&mut graph, 5, |t| {
        t.extend(tensor("car_scale", &[1], &[model.car_scale]))
    });
    // Inputs and outputs.
    message(&mut graph, 11, |v| v.extend(value_info("features", l.dim)));
    for (name, columns) in [
        ("direction", 3),
        ("event_type", 10),
        ("strength", 2),
        ("car", 1),
    ] {
        message(&mut graph, 12, |v| v.extend(value_info(name, columns)));
    }

    let mut model_bytes = Vec::new();
    int(&mut model_bytes, 1, 8); // ir_version
    string(&mut model_bytes, 2, "janus");
    string(&mut model_bytes, 3, env!("CARGO_PKG_VERSION"));
    bytes(&mut model_bytes, 7, &graph);
    message(&mut model_bytes, 8, |o| {
        string(o, 1, "");
        int(o, 2, 13);
    });
    // metadata_props: the feature encoding the graph expects.
    if let Some(features) = features {
        message(&mut model_bytes, 14, |kv| {
            string(kv, 1, FEATURES_METADATA_KEY);
            string(kv, 2, features);
        });
    }
    model_bytes
}

/// Dense feature rows (`features.len()` × `dim`, row-major) for the ONNX graph's `features`
/// input; an index at or beyond `dim` is left out rather than spilling into the next row.
pub fn dense(features: &[&super::features::Sparse], dim: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; features.len() * dim];
    for (row, x) in features.iter().enumerate() {
        for &(i, v) in x.iter().filter(|(i, _)| (*i as usize) < dim) {
            out[row * dim + i as usize] = v;
        }
    }
    out
}
