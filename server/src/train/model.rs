//! Models: an `mlp`, a small `cnn` and a user's TorchScript module behind one type, each with its
//! parameters named as PyTorch names them and listed in layer order (first layer first, head
//! last), so the layer-rate spec, the optimizer's per-parameter groups and the checkpoints see
//! them the same way whatever the model.

use std::{path::Path, sync::Mutex};

use tch::{nn, CModule, Device, Kind, TchError, Tensor};

use crate::{
    error::{Result, StrataError},
    spec::{
        model::{Activation, CnnGeometry, LayerOptions, CNN_KERNEL},
        rates::{ParamInfo, ResolvedParam},
        ModelSpec, MAX_PARAMETERS,
    },
};

/// A model and its parameters in layer order.
pub struct Model {
    net: Net,
    parameters: Vec<(String, Tensor)>,
}

enum Net {
    Mlp {
        layers: Vec<nn::Linear>,
        head: nn::Linear,
        options: LayerOptions,
    },
    Cnn {
        convs: Vec<nn::Conv2D>,
        head: nn::Linear,
        options: LayerOptions,
    },
    /// Switching a module between training and evaluation mode needs `&mut`; `forward` takes
    /// `&self`, and the mode only changes between an epoch's training and its validation.
    Script(Mutex<ScriptModule>),
}

struct ScriptModule {
    module: CModule,
    /// The mode the module is in: `Some(true)` training, `Some(false)` evaluation.
    training: Option<bool>,
}

/// Largest TorchScript file loaded.
const MAX_TORCHSCRIPT_BYTES: u64 = 2 << 30;

fn invalid(message: String) -> StrataError {
    StrataError::invalid("model", message)
}

/// libtorch's messages carry a C++ backtrace; the first line is the one a user can act on.
fn first_line(err: &TchError) -> String {
    err.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Layers are created empty (no random draws) and then initialized by [`init_like_pytorch`], so
/// the draws come in PyTorch's order (each layer's weight, then its bias), not tch's (bias first).
const EMPTY_LINEAR: nn::LinearConfig = nn::LinearConfig {
    ws_init: nn::Init::Const(0.0),
    bs_init: Some(nn::Init::Const(0.0)),
    bias: true,
};

/// PyTorch's default initialization of `nn.Linear` and `nn.Conv2d`, which Strata's built-in
/// layers follow so that a run starts where the same model written in PyTorch would: weights by
/// `kaiming_uniform_(w, a=sqrt(5))`, i.e. uniform in ±gain·√(3/fan_in) with gain √(2/(1+a²))
/// (= ±1/√fan_in, computed in PyTorch's order of operations so the bound matches it to the last
/// bit), biases uniform in ±1/√fan_in. `parameters` are in creation order, each weight followed by
/// its bias; drawn from libtorch's global generator (seed it first), so with the same seed the
/// values are PyTorch's own.
fn init_like_pytorch(parameters: &[(String, Tensor)]) -> Result<(), TchError> {
    let a = 5f64.sqrt();
    let gain = (2.0 / (1.0 + a * a)).sqrt();
    let mut fan_in = 1i64;
    tch::no_grad(|| {
        for (name, tensor) in parameters {
            let size = tensor.size();
            if name.ends_with(".weight") {
                fan_in = size.iter().skip(1).product::<i64>().max(1);
                let std = gain / (fan_in as f64).sqrt();
                let bound = 3f64.sqrt() * std;
                let _ = tensor.shallow_clone().f_uniform_(-bound, bound)?;
            } else {
                let bound = 1.0 / (fan_in as f64).sqrt();
                let _ = tensor.shallow_clone().f_uniform_(-bound, bound)?;
            }
        }
        Ok(())
    })
}

fn push_layer(
    parameters: &mut Vec<(String, Tensor)>,
    name: &str,
    ws: &Tensor,
    bs: Option<&Tensor>,
) {
    parameters.push((format!("{name}.weight"), ws.shallow_clone()));
    if let Some(bias) = bs {
        parameters.push((format!("{name}.bias"), bias.shallow_clone()));
    }
}

fn activate(x: &Tensor, activation: Activation) -> Result<Tensor, TchError> {
    match activation {
        Activation::Relu => x.f_relu(),
        Activation::Tanh => x.f_tanh(),
        Activation::Gelu => x.f_gelu("none"),
        Activation::Sigmoid => x.f_sigmoid(),
        Activation::Silu => x.f_silu(),
        Activation::Elu => x.f_elu(),
        Activation::LeakyRelu => x.f_leaky_relu(),
    }
}

fn dropout(x: Tensor, p: f64, train: bool) -> Result<Tensor, TchError> {
    if p > 0.0 && train {
        x.f_dropout(p, true)
    } else {
        Ok(x)
    }
}

impl Model {
    /// Builds a fresh model for samples of shape `sample` and `outputs` outputs on `device`
    /// (initialised from libtorch's global RNG: seed it first), or loads a TorchScript module.
    pub fn build(spec: &ModelSpec, sample: &[i64], outputs: i64, device: Device) -> Result<Model> {
        match spec {
            ModelSpec::Mlp { hidden, options } => {
                let vs = nn::VarStore::new(device);
                let root = vs.root();
                let mut layers = Vec::with_capacity(hidden.len());
                let mut parameters = Vec::new();
                let mut width = sample.iter().product::<i64>();
                for (i, &next) in hidden.iter().enumerate() {
                    let name = format!("layer{i}");
                    let layer = nn::linear(&root / name.as_str(), width, next, EMPTY_LINEAR);
                    push_layer(&mut parameters, &name, &layer.ws, layer.bs.as_ref());
                    layers.push(layer);
                    width = next;
                }
                let head = nn::linear(&root / "head", width, outputs, EMPTY_LINEAR);
                push_layer(&mut parameters, "head", &head.ws, head.bs.as_ref());
                init_like_pytorch(&parameters).map_err(|e| invalid(e.to_string()))?;
                Ok(Model {
                    net: Net::Mlp {
                        layers,
                        head,
                        options: *options,
                    },
                    parameters,
                })
            }
            ModelSpec::Cnn { channels, options } => {
                let geometry = CnnGeometry::new(channels, sample)?;
                let vs = nn::VarStore::new(device);
                let root = vs.root();
                let config = nn::ConvConfig {
                    padding: CNN_KERNEL / 2,
                    ws_init: nn::Init::Const(0.0),
                    bs_init: nn::Init::Const(0.0),
                    ..Default::default()
                };
                let mut convs = Vec::with_capacity(channels.len());
                let mut parameters = Vec::new();
                let mut in_channels = geometry.in_channels;
                for (i, &out) in channels.iter().enumerate() {
                    let name = format!("conv{i}");
                    let conv =
                        nn::conv2d(&root / name.as_str(), in_channels, out, CNN_KERNEL, config);
                    push_layer(&mut parameters, &name, &conv.ws, conv.bs.as_ref());
                    convs.push(conv);
                    in_channels = out;
                }
                let head = nn::linear(&root / "head", geometry.head_inputs, outputs, EMPTY_LINEAR);
                push_layer(&mut parameters, "head", &head.ws, head.bs.as_ref());
                init_like_pytorch(&parameters).map_err(|e| invalid(e.to_string()))?;
                Ok(Model {
                    net: Net::Cnn {
                        convs,
                        head,
                        options: *options,
                    },
                    parameters,
                })
            }
            ModelSpec::TorchScript { path } => Self::load_script(path, device),
        }
    }

    /// Loads a TorchScript module and takes its parameters under their own names. Unlike tch's
    /// `TrainableCModule`, which puts them all in one optimizer group, the parameters are handed
    /// to the optimizer one by one, so each gets its own rate.
    fn load_script(path: &Path, device: Device) -> Result<Model> {
        // A regular file of bounded size; libtorch reads it only after this check.
        crate::spec::paths::open_regular(path, MAX_TORCHSCRIPT_BYTES).map_err(|e| {
            invalid(format!(
                "cannot read the TorchScript module {} (it is read on the daemon's host): {e}",
                path.display()
            ))
        })?;
        let module = CModule::load_on_device(path, device).map_err(|e| {
            invalid(format!(
                "cannot load {} as a TorchScript module (save it with torch.jit.script(model).save(path)): {}",
                path.display(),
                first_line(&e)
            ))
        })?;
        let parameters = module
            .named_parameters()
            .map_err(|e| invalid(format!("{}: {}", path.display(), first_line(&e))))?;
        if parameters.is_empty() {
            return Err(invalid(format!(
                "the TorchScript module at {} has no parameters to train",
                path.display()
            )));
        }
        for (name, tensor) in &parameters {
            if tensor.kind() != Kind::Float {
                return Err(invalid(format!(
                    "{}: parameter {name} is {:?}; Strata trains float32 parameters (call .float() on the module before scripting it)",
                    path.display(),
                    tensor.kind()
                )));
            }
            // Frozen parameters are switched off per epoch by the training loop.
            let _ = tensor
                .f_set_requires_grad(true)
                .map_err(|e| invalid(first_line(&e)))?;
        }
        Ok(Model {
            net: Net::Script(Mutex::new(ScriptModule {
                module,
                training: None,
            })),
            parameters,
        })
    }

    /// Logits (classification) or predictions (regression) for a batch. `train` enables dropout
    /// (and puts a TorchScript module in training mode); validation passes `false`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor, TchError> {
        match &self.net {
            Net::Mlp {
                layers,
                head,
                options,
            } => {
                let mut h = if x.dim() > 2 {
                    x.f_flatten(1, -1)?
                } else {
                    x.shallow_clone()
                };
                for layer in layers {
                    h = h.f_linear(&layer.ws, layer.bs.as_ref())?;
                    h = dropout(activate(&h, options.activation)?, options.dropout, train)?;
                }
                h.f_linear(&head.ws, head.bs.as_ref())
            }
            Net::Cnn {
                convs,
                head,
                options,
            } => {
                let padding = CNN_KERNEL / 2;
                let mut h = x.shallow_clone();
                for conv in convs {
                    h = h.f_conv2d(
                        &conv.ws,
                        conv.bs.as_ref(),
                        [1, 1],
                        [padding, padding],
                        [1, 1],
                        1,
                    )?;
                    h = activate(&h, options.activation)?;
                    let size = h.size();
                    if CnnGeometry::pools(size[2], size[3]) {
                        h = h.f_max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)?;
                    }
                }
                let h = dropout(h.f_flatten(1, -1)?, options.dropout, train)?;
                h.f_linear(&head.ws, head.bs.as_ref())
            }
            Net::Script(script) => {
                let mut script = script.lock().unwrap_or_else(|p| p.into_inner());
                if script.training != Some(train) {
                    if train {
                        script.module.f_set_train()?;
                    } else {
                        script.module.f_set_eval()?;
                    }
                    script.training = Some(train);
                }
                script.module.forward_ts(&[x])
            }
        }
    }

    /// Parameters in layer order, named like `layer0.weight` (or as the module names them).
    pub fn parameters(&self) -> &[(String, Tensor)] {
        &self.parameters
    }

    pub fn parameter_infos(&self) -> Vec<ParamInfo> {
        self.parameters
            .iter()
            .map(|(name, t)| ParamInfo::new(name, t.size()))
            .collect()
    }

    /// Builds the run's model (see [`Model::build`]) and checks it has exactly the parameters
    /// the rate table was resolved against when the run was started; a dataset or module file
    /// changed since then would otherwise train with misassigned rates.
    pub fn for_run(
        spec: &ModelSpec,
        sample: &[i64],
        outputs: i64,
        resolved: &[ResolvedParam],
        device: Device,
    ) -> Result<Model> {
        let model = Model::build(spec, sample, outputs, device)?;
        let built = model.parameter_infos();
        let planned: Vec<&ParamInfo> = resolved.iter().map(|p| &p.info).collect();
        if built.len() != planned.len() || built.iter().zip(&planned).any(|(a, b)| a != *b) {
            let describe = |infos: &mut dyn Iterator<Item = &ParamInfo>| {
                infos
                    .map(|p| format!("{} {:?}", p.name, p.shape))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(StrataError::FailedPrecondition(format!(
                "the model's parameters ({}) differ from those the run was started with ({}); did the dataset or module file change since?",
                describe(&mut built.iter()),
                describe(&mut planned.into_iter())
            )));
        }
        Ok(model)
    }
}

/// The parameters a model of `spec` has for samples of shape `sample` and `outputs` outputs,
/// without training anything (for validation and dry runs). A TorchScript module is loaded and
/// run once on a batch of zeros, to check it maps such samples to `[batch, outputs]`.
pub fn describe_parameters(
    spec: &ModelSpec,
    sample: &[i64],
    outputs: i64,
) -> Result<Vec<ParamInfo>> {
    if let Some(count) = spec.parameter_count(sample, outputs)? {
        if count > MAX_PARAMETERS {
            return Err(invalid(format!(
                "this model has {count} parameters for this dataset; at most {MAX_PARAMETERS} are allowed"
            )));
        }
    }
    let model = Model::build(spec, sample, outputs, Device::Cpu)?;
    if let ModelSpec::TorchScript { path } = spec {
        check_script_output(&model, path, sample, outputs)?;
    }
    Ok(model.parameter_infos())
}

fn check_script_output(model: &Model, path: &Path, sample: &[i64], outputs: i64) -> Result<()> {
    const PROBE_BATCH: i64 = 2;
    let shape: Vec<i64> = std::iter::once(PROBE_BATCH)
        .chain(sample.iter().copied())
        .collect();
    let output = tch::no_grad(|| {
        let x = Tensor::f_zeros(shape.as_slice(), (Kind::Float, Device::Cpu))?;
        model.forward(&x, false)
    })
    .map_err(|e| {
        invalid(format!(
            "{} fails on a batch of shape {shape:?} (this dataset's samples are {sample:?}): {}",
            path.display(),
            first_line(&e)
        ))
    })?;
    let expected = vec![PROBE_BATCH, outputs];
    if output.size() != expected {
        return Err(invalid(format!(
            "{} maps a batch of shape {shape:?} to {:?}; this dataset needs {expected:?} ({})",
            path.display(),
            output.size(),
            if outputs == 1 {
                "one regression output".to_string()
            } else {
                format!("one logit per class, {outputs} classes")
            }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(infos: &[ParamInfo]) -> Vec<&str> {
        infos.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn names_and_shapes_like_pytorch() {
        let spec = ModelSpec::parse("mlp:8,4").unwrap();
        let infos = describe_parameters(&spec, &[2], 3).unwrap();
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
        let infos = describe_parameters(&spec, &[1, 8, 8], 10).unwrap();
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
        let err = describe_parameters(&spec, &[4], 3).unwrap_err().to_string();
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
        let spec = ModelSpec::TorchScript {
            path: "/nonexistent/net.pt".into(),
        };
        let err = describe_parameters(&spec, &[2], 2).unwrap_err().to_string();
        assert!(
            err.starts_with("model: cannot read the TorchScript module /nonexistent/net.pt"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("net.pt");
        std::fs::write(&path, b"not a module").unwrap();
        let err = describe_parameters(&ModelSpec::TorchScript { path }, &[2], 2)
            .unwrap_err()
            .to_string();
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
}
