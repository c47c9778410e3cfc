//! Models: an `mlp`, a small `cnn` and a user's TorchScript module behind one type, each with its
//! parameters named as PyTorch names them and listed in layer order (first layer first, head
//! last), so the layer-rate spec, the optimizer's per-parameter groups and the checkpoints see
//! them the same way whatever the model.

mod script;

use std::sync::Mutex;

use tch::{nn, Device, TchError, Tensor};

use script::ScriptModule;
use strata_server::{
    error::{Result, StrataError},
    spec::{
        model::{Activation, CnnGeometry, LayerOptions, CNN_KERNEL},
        rates::{ParamInfo, ResolvedParam},
        ModelSpec,
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

fn invalid(message: String) -> StrataError {
    StrataError::invalid("model", message)
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
                Self::build_mlp(hidden, *options, sample, outputs, device)
            }
            ModelSpec::Cnn { channels, options } => {
                Self::build_cnn(channels, *options, sample, outputs, device)
            }
            ModelSpec::TorchScript { path } => {
                let (module, parameters) = ScriptModule::load(path, device)?;
                Ok(Model {
                    net: Net::Script(Mutex::new(module)),
                    parameters,
                })
            }
        }
    }

    /// Fully connected layers `layer0..` of the `hidden` widths, then `head`.
    fn build_mlp(
        hidden: &[i64],
        options: LayerOptions,
        sample: &[i64],
        outputs: i64,
        device: Device,
    ) -> Result<Model> {
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
                options,
            },
            parameters,
        })
    }

    /// Convolutions `conv0..` with the `channels` as outputs, then `head`.
    fn build_cnn(
        channels: &[i64],
        options: LayerOptions,
        sample: &[i64],
        outputs: i64,
        device: Device,
    ) -> Result<Model> {
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
            let conv = nn::conv2d(&root / name.as_str(), in_channels, out, CNN_KERNEL, config);
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
                options,
            },
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
            } => forward_mlp(x, layers, head, options, train),
            Net::Cnn {
                convs,
                head,
                options,
            } => forward_cnn(x, convs, head, options, train),
            Net::Script(script) => script
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .forward(x, train),
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

/// The parameters a TorchScript module has, named as it names them, once loaded (on the CPU) and
/// run once on a batch of zeros to check that it maps samples of shape `sample` to
/// `[batch, outputs]` (a start or a dry run asks a worker for this; a built-in model's
/// parameters the daemon computes itself, `ModelSpec::parameters`, which `Model::build` matches).
pub fn describe_module(
    path: &std::path::Path,
    sample: &[i64],
    outputs: i64,
) -> Result<Vec<ParamInfo>> {
    let spec = ModelSpec::TorchScript {
        path: path.to_path_buf(),
    };
    let model = Model::build(&spec, sample, outputs, Device::Cpu)?;
    script::check_output(&model, path, sample, outputs)?;
    Ok(model.parameter_infos())
}

/// An mlp's output: images flattened, then each layer, its activation and dropout, then the head.
fn forward_mlp(
    x: &Tensor,
    layers: &[nn::Linear],
    head: &nn::Linear,
    options: &LayerOptions,
    train: bool,
) -> Result<Tensor, TchError> {
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

/// A cnn's output: each convolution, its activation and (while the image is large enough) a 2×2
/// max pool; then dropout and the head.
fn forward_cnn(
    x: &Tensor,
    convs: &[nn::Conv2D],
    head: &nn::Linear,
    options: &LayerOptions,
    train: bool,
) -> Result<Tensor, TchError> {
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

#[cfg(test)]
mod tests;
