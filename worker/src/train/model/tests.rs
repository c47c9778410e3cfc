use tch::Kind;

use super::*;

fn names(infos: &[ParamInfo]) -> Vec<&str> {
    infos.iter().map(|p| p.name.as_str()).collect()
}

/// What the daemon computes of a built-in model (`ModelSpec::parameters`, without libtorch).
fn described(spec: &ModelSpec, sample: &[i64], outputs: i64) -> Result<Vec<ParamInfo>> {
    spec.parameters(sample, outputs)
        .map(|params| params.expect("a built-in model"))
}

/// The daemon resolves a run's rates against the parameters it computes for a built-in model;
/// the worker checks the model it builds has exactly those (`Model::for_run`). They agree.
#[test]
fn the_daemons_parameter_list_is_the_built_models() {
    for (model, sample, outputs) in [
        ("mlp:8,4", vec![2], 3),
        ("mlp:16:act=gelu:dropout=0.2", vec![1, 4, 4], 10),
        ("mlp:64,64,64", vec![13], 1),
        ("cnn:4,8", vec![1, 8, 8], 10),
        ("cnn", vec![3, 5, 7], 2),
        ("cnn:2,2,2,2", vec![1, 3, 3], 4),
    ] {
        let spec = ModelSpec::parse(model).unwrap();
        let built = Model::build(&spec, &sample, outputs, Device::Cpu).unwrap();
        assert_eq!(
            described(&spec, &sample, outputs).unwrap(),
            built.parameter_infos(),
            "{model} on {sample:?}"
        );
    }
}

#[test]
fn names_and_shapes_like_pytorch() {
    let spec = ModelSpec::parse("mlp:8,4").unwrap();
    let infos = described(&spec, &[2], 3).unwrap();
    assert_eq!(
        names(&infos),
        [
            "layer0.weight",
            "layer0.bias",
            "layer1.weight",
            "layer1.bias",
            "head.weight",
            "head.bias"
        ]
    );
    assert_eq!(infos[0].shape, vec![8, 2]);
    assert_eq!(infos[4].shape, vec![3, 4]);
    assert_eq!(infos[5].group, "head");
}

#[test]
fn cnn_groups_are_convs_then_head() {
    let spec = ModelSpec::parse("cnn:4,8").unwrap();
    let infos = described(&spec, &[1, 8, 8], 10).unwrap();
    assert_eq!(
        names(&infos),
        [
            "conv0.weight",
            "conv0.bias",
            "conv1.weight",
            "conv1.bias",
            "head.weight",
            "head.bias"
        ]
    );
    assert_eq!(infos[0].shape, vec![4, 1, 3, 3]);
    assert_eq!(infos[4].shape, vec![10, 8 * 2 * 2]);
    let count: i64 = infos.iter().map(|p| p.shape.iter().product::<i64>()).sum();
    assert_eq!(Some(count), spec.parameter_count(&[1, 8, 8], 10).unwrap());

    let model = Model::build(&spec, &[1, 8, 8], 10, Device::Cpu).unwrap();
    let out = model
        .forward(
            &Tensor::zeros([5, 1, 8, 8], (Kind::Float, Device::Cpu)),
            true,
        )
        .unwrap();
    assert_eq!(out.size(), vec![5, 10]);
    let err = spec.parameters(&[4], 3).unwrap_err().to_string();
    assert!(
        err.starts_with("model: cnn needs image-shaped samples"),
        "{err}"
    );
}

#[test]
fn dropout_only_while_training() {
    tch::manual_seed(0);
    let spec = ModelSpec::parse("mlp:64:act=tanh:dropout=0.5").unwrap();
    let model = Model::build(&spec, &[4], 2, Device::Cpu).unwrap();
    let x = Tensor::ones([8, 4], (Kind::Float, Device::Cpu));
    let eval_a = model.forward(&x, false).unwrap();
    let eval_b = model.forward(&x, false).unwrap();
    assert!(eval_a.equal(&eval_b), "validation is deterministic");
    let train = model.forward(&x, true).unwrap();
    assert!(!train.equal(&eval_a), "training drops activations");
    // Images are flattened for an mlp.
    let model = Model::build(&spec, &[1, 2, 2], 2, Device::Cpu).unwrap();
    let out = model
        .forward(
            &Tensor::ones([3, 1, 2, 2], (Kind::Float, Device::Cpu)),
            false,
        )
        .unwrap();
    assert_eq!(out.size(), vec![3, 2]);
}

#[test]
fn a_missing_or_bad_module_is_a_model_error() {
    let err = describe_module(std::path::Path::new("/nonexistent/net.pt"), &[2], 2)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("model: cannot read the TorchScript module /nonexistent/net.pt"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.pt");
    std::fs::write(&path, b"not a module").unwrap();
    let err = describe_module(&path, &[2], 2).unwrap_err().to_string();
    assert!(
        err.starts_with("model: cannot load") && !err.contains('\n'),
        "{err}"
    );
}

/// Weights and biases of the built-in layers lie within PyTorch's bounds (±1/√fan_in, fan_in
/// from the layer's weight) and fill them as a uniform distribution does (standard deviation
/// bound/√3); tch's own default (Kaiming with a ReLU gain) is √6 times wider.
#[test]
fn built_in_layers_initialize_like_pytorch() {
    tch::manual_seed(1);
    let mlp = ModelSpec::parse("mlp:256,64").unwrap();
    let model = Model::build(&mlp, &[400], 10, Device::Cpu).unwrap();
    let cnn = ModelSpec::parse("cnn:16").unwrap();
    let conv = Model::build(&cnn, &[3, 8, 8], 10, Device::Cpu).unwrap();
    let mut fan_in = 0i64;
    for (name, tensor) in model.parameters().iter().chain(conv.parameters()) {
        if name.ends_with(".weight") {
            fan_in = tensor.size().iter().skip(1).product();
        }
        let bound = 1.0 / (fan_in as f64).sqrt();
        let max = tensor.abs().max().double_value(&[]);
        assert!(
            max <= bound * (1.0 + 1e-6),
            "{name}: |w| up to {max}, bound {bound}"
        );
        if tensor.numel() >= 1000 {
            let std = tensor.std(true).double_value(&[]);
            let expected = bound / 3f64.sqrt();
            assert!(
                (std / expected - 1.0).abs() < 0.1,
                "{name}: std {std}, a uniform ±{bound} has {expected}"
            );
            assert!(max > bound * 0.9, "{name}: the draws fill the range");
        }
    }
    assert_eq!(
        model.parameters()[0].1.size(),
        vec![256, 400],
        "layer0's fan-in is 400"
    );
    assert_eq!(
        conv.parameters()[0].1.size(),
        vec![16, 3, 3, 3],
        "conv0's is 27"
    );
}
