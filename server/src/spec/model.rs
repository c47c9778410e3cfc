//! The model part of a run's configuration:
//!
//! - `mlp:H1,H2,...[:act=A][:dropout=P]` — fully connected layers `layer0..`, then `head`;
//! - `cnn[:C1,C2,...][:act=A][:dropout=P]` — 3×3 convolutions `conv0..` (each followed by the
//!   activation and a 2×2 max-pool), then `head`, over image-shaped samples `[C, H, W]`;
//! - `torchscript:PATH` — a user's scripted PyTorch module, trained under its own parameter names.
//!
//! Options follow the widths, separated by `:`, in any order. Dropout acts in training only: after
//! every hidden layer of an `mlp`, before the head of a `cnn`.

use std::path::PathBuf;

use crate::error::{Result, StrataError};

pub const MODELS: &str =
    "mlp:H1,H2,...[:act=A][:dropout=P], cnn[:C1,C2,...][:act=A][:dropout=P], torchscript:PATH";
pub const ACTIVATIONS: &str = "relu, tanh, gelu, sigmoid, silu, elu, leaky_relu";
pub const DEFAULT_MLP_WIDTHS: [i64; 2] = [64, 64];
pub const DEFAULT_CNN_CHANNELS: [i64; 2] = [16, 32];
/// Convolutions are 3×3 with padding 1, so they keep the image's height and width.
pub const CNN_KERNEL: i64 = 3;

const MAX_HIDDEN_LAYERS: usize = 64;
const MAX_LAYER_WIDTH: i64 = 1 << 16;
const MAX_CONV_LAYERS: usize = 8;
const MAX_CHANNELS: i64 = 1024;
/// Dropout must leave something to train on.
const MAX_DROPOUT: f64 = 0.95;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Tanh,
    Gelu,
    Sigmoid,
    Silu,
    Elu,
    LeakyRelu,
}

impl Activation {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "gelu" => Activation::Gelu,
            "sigmoid" => Activation::Sigmoid,
            "silu" | "swish" => Activation::Silu,
            "elu" => Activation::Elu,
            "leaky_relu" | "leakyrelu" => Activation::LeakyRelu,
            _ => return None,
        })
    }
}

/// What sits between the layers of a built-in model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerOptions {
    pub activation: Activation,
    /// Probability of zeroing an activation while training; 0 for none.
    pub dropout: f64,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            activation: Activation::Relu,
            dropout: 0.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ModelSpec {
    /// Fully connected layers `layer0..layerN-1` of these widths, then `head`. Samples of any
    /// shape are flattened.
    Mlp {
        hidden: Vec<i64>,
        options: LayerOptions,
    },
    /// Convolutions `conv0..convN-1` with these output channels, then `head`.
    Cnn {
        channels: Vec<i64>,
        options: LayerOptions,
    },
    /// A TorchScript module file, loaded on the daemon.
    TorchScript { path: PathBuf },
}

fn invalid(message: String) -> StrataError {
    StrataError::invalid("model", message)
}

/// Parses `W1,W2,...` (each from 1 to `max`), at most `max_layers` of them.
fn parse_widths(
    text: &str,
    widths: &str,
    what: &str,
    max: i64,
    max_layers: usize,
) -> Result<Vec<i64>> {
    let parsed = widths
        .split(',')
        .map(|w| {
            w.trim()
                .parse::<i64>()
                .ok()
                .filter(|&w| (1..=max).contains(&w))
                .ok_or_else(|| {
                    invalid(format!(
                        "'{text}': {what} '{w}' must be a whole number from 1 to {max}"
                    ))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    if parsed.len() > max_layers {
        return Err(invalid(format!("'{text}': at most {max_layers} layers")));
    }
    Ok(parsed)
}

/// Parses the `:`-separated parts after the model's kind: widths first (optional), then options.
fn parse_layers(
    text: &str,
    parts: &[&str],
    what: &str,
    max: i64,
    max_layers: usize,
) -> Result<(Option<Vec<i64>>, LayerOptions)> {
    let mut options = LayerOptions::default();
    let mut widths = None;
    let (mut seen_act, mut seen_dropout) = (false, false);
    for (i, part) in parts.iter().map(|p| p.trim()).enumerate() {
        let Some((key, value)) = part.split_once('=') else {
            if i > 0 {
                return Err(invalid(format!(
                    "'{text}': '{part}' is not an option; the {what}s come first, then options like act=tanh or dropout=0.1"
                )));
            }
            widths = Some(parse_widths(text, part, what, max, max_layers)?);
            continue;
        };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        match key.as_str() {
            "act" | "activation" => {
                if std::mem::replace(&mut seen_act, true) {
                    return Err(invalid(format!("'{text}': act is given twice")));
                }
                options.activation =
                    Activation::parse(&value.to_ascii_lowercase()).ok_or_else(|| {
                        invalid(format!(
                            "'{text}': '{value}' is not an activation; allowed: {ACTIVATIONS}"
                        ))
                    })?;
            }
            "dropout" => {
                if std::mem::replace(&mut seen_dropout, true) {
                    return Err(invalid(format!("'{text}': dropout is given twice")));
                }
                options.dropout = value
                    .parse::<f64>()
                    .ok()
                    .filter(|p| p.is_finite() && (0.0..=MAX_DROPOUT).contains(p))
                    .ok_or_else(|| {
                        invalid(format!(
                            "'{text}': dropout '{value}' must be a probability from 0 to {MAX_DROPOUT}"
                        ))
                    })?;
            }
            _ => {
                return Err(invalid(format!(
                    "'{text}': '{key}' is not an option; allowed: act=A ({ACTIVATIONS}), dropout=P"
                )))
            }
        }
    }
    Ok((widths, options))
}

impl ModelSpec {
    pub fn parse(text: &str) -> Result<ModelSpec> {
        let (kind, rest) = match text.split_once(':') {
            Some((kind, rest)) => (kind.trim().to_ascii_lowercase(), Some(rest)),
            None => (text.trim().to_ascii_lowercase(), None),
        };
        match kind.as_str() {
            "mlp" => {
                let parts: Vec<&str> = rest.map(|r| r.split(':').collect()).unwrap_or_default();
                let (hidden, options) = parse_layers(
                    text,
                    &parts,
                    "hidden width",
                    MAX_LAYER_WIDTH,
                    MAX_HIDDEN_LAYERS,
                )?;
                Ok(ModelSpec::Mlp {
                    hidden: hidden.unwrap_or_else(|| DEFAULT_MLP_WIDTHS.to_vec()),
                    options,
                })
            }
            "cnn" => {
                let parts: Vec<&str> = rest.map(|r| r.split(':').collect()).unwrap_or_default();
                let (channels, options) =
                    parse_layers(text, &parts, "channel count", MAX_CHANNELS, MAX_CONV_LAYERS)?;
                Ok(ModelSpec::Cnn {
                    channels: channels.unwrap_or_else(|| DEFAULT_CNN_CHANNELS.to_vec()),
                    options,
                })
            }
            "torchscript" => {
                let path = rest.unwrap_or("").trim();
                if path.is_empty() {
                    return Err(invalid(
                        "'torchscript:' needs the module's path, e.g. torchscript:/models/net.pt"
                            .into(),
                    ));
                }
                if !std::path::Path::new(path).is_absolute() || path.chars().any(char::is_control) {
                    return Err(invalid(format!(
                        "'{text}': the path must be absolute (the daemon reads it on its own host; the strata CLI makes relative paths absolute)"
                    )));
                }
                Ok(ModelSpec::TorchScript {
                    path: PathBuf::from(path),
                })
            }
            _ => Err(invalid(format!(
                "'{text}' is not a model; allowed: {MODELS} (e.g. mlp:64,64 or cnn:16,32)"
            ))),
        }
    }

    /// Trainable scalars of this model for samples of shape `sample` and `outputs` outputs, or
    /// `None` for a TorchScript module (only loading it tells). An error when the model cannot
    /// take such samples.
    pub fn parameter_count(&self, sample: &[i64], outputs: i64) -> Result<Option<i64>> {
        match self {
            ModelSpec::Mlp { hidden, .. } => {
                let mut count = 0i64;
                let mut width = sample.iter().product::<i64>();
                for &next in hidden.iter().chain(std::iter::once(&outputs)) {
                    count = count.saturating_add(width.saturating_mul(next).saturating_add(next));
                    width = next;
                }
                Ok(Some(count))
            }
            ModelSpec::Cnn { channels, .. } => {
                let geometry = CnnGeometry::new(channels, sample)?;
                let mut count = 0i64;
                let mut in_channels = geometry.in_channels;
                for &out in channels {
                    let kernel = in_channels.saturating_mul(CNN_KERNEL * CNN_KERNEL);
                    count = count.saturating_add(out.saturating_mul(kernel).saturating_add(out));
                    in_channels = out;
                }
                let head = geometry
                    .head_inputs
                    .saturating_mul(outputs)
                    .saturating_add(outputs);
                Ok(Some(count.saturating_add(head)))
            }
            ModelSpec::TorchScript { .. } => Ok(None),
        }
    }
}

impl ModelSpec {
    /// The parameters a built-in model has for samples of shape `sample` and `outputs` outputs,
    /// named and shaped as the worker's libtorch model (and PyTorch) has them, in layer order:
    /// each layer's `weight` (`[out, in]`, or `[out, in, 3, 3]` for a convolution), then its
    /// `bias`. `None` for a TorchScript module: only loading it tells (a worker does). An error
    /// when the model cannot take such samples or is larger than [`MAX_PARAMETERS`] allows.
    ///
    /// [`MAX_PARAMETERS`]: super::MAX_PARAMETERS
    pub fn parameters(
        &self,
        sample: &[i64],
        outputs: i64,
    ) -> Result<Option<Vec<super::rates::ParamInfo>>> {
        if let Some(count) = self.parameter_count(sample, outputs)? {
            if count > super::MAX_PARAMETERS {
                return Err(invalid(format!(
                    "this model has {count} parameters for this dataset; at most {} are allowed",
                    super::MAX_PARAMETERS
                )));
            }
        }
        let mut params = Vec::new();
        let mut layer = |name: &str, weight: Vec<i64>| {
            let out = weight[0];
            params.push(super::rates::ParamInfo::new(
                &format!("{name}.weight"),
                weight,
            ));
            params.push(super::rates::ParamInfo::new(
                &format!("{name}.bias"),
                vec![out],
            ));
        };
        match self {
            ModelSpec::Mlp { hidden, .. } => {
                let mut width = sample.iter().product::<i64>();
                for (i, &next) in hidden.iter().enumerate() {
                    layer(&format!("layer{i}"), vec![next, width]);
                    width = next;
                }
                layer("head", vec![outputs, width]);
            }
            ModelSpec::Cnn { channels, .. } => {
                let geometry = CnnGeometry::new(channels, sample)?;
                let mut in_channels = geometry.in_channels;
                for (i, &out) in channels.iter().enumerate() {
                    layer(
                        &format!("conv{i}"),
                        vec![out, in_channels, CNN_KERNEL, CNN_KERNEL],
                    );
                    in_channels = out;
                }
                layer("head", vec![outputs, geometry.head_inputs]);
            }
            ModelSpec::TorchScript { .. } => return Ok(None),
        }
        Ok(Some(params))
    }
}

/// How a `cnn` maps an image `[C, H, W]` onto its head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CnnGeometry {
    pub in_channels: i64,
    /// Features the head sees: last channels × height × width after the pools.
    pub head_inputs: i64,
}

impl ModelSpec {
    /// How many values one sample makes the built-in layers hold while it passes through them
    /// (each layer's output, the input included); `None` for a TorchScript module, whose insides
    /// are its own. Times the batch size, the memory a step needs for activations is of this order
    /// (more for their gradients).
    pub fn activations_per_sample(&self, sample: &[i64], outputs: i64) -> Option<i64> {
        let features: i64 = sample.iter().product();
        match self {
            ModelSpec::Mlp { hidden, .. } => Some(
                hidden
                    .iter()
                    .fold(features.saturating_add(outputs), |n, &w| {
                        n.saturating_add(w)
                    }),
            ),
            ModelSpec::Cnn { channels, .. } => {
                let &[_, mut height, mut width] = sample else {
                    return None;
                };
                let mut total = features.saturating_add(outputs);
                for &out in channels {
                    total = total.saturating_add(out.saturating_mul(height).saturating_mul(width));
                    if CnnGeometry::pools(height, width) {
                        (height, width) = (height / 2, width / 2);
                    }
                }
                Some(total)
            }
            ModelSpec::TorchScript { .. } => None,
        }
    }
}

impl CnnGeometry {
    pub fn new(channels: &[i64], sample: &[i64]) -> Result<Self> {
        let &[in_channels, mut height, mut width] = sample else {
            return Err(invalid(format!(
                "cnn needs image-shaped samples [C, H, W] (idx:DIR images are [1, H, W]); this dataset's samples have shape {sample:?} — use an mlp"
            )));
        };
        for _ in channels {
            if Self::pools(height, width) {
                (height, width) = (height / 2, width / 2);
            }
        }
        let last = channels.last().copied().unwrap_or(in_channels);
        Ok(CnnGeometry {
            in_channels,
            head_inputs: last.saturating_mul(height).saturating_mul(width),
        })
    }

    /// Whether a 2×2 max-pool follows a convolution on an image of this size (it stops at 1×1).
    pub fn pools(height: i64, width: i64) -> bool {
        height >= 2 && width >= 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlp_syntax() {
        assert_eq!(
            ModelSpec::parse("mlp:64,32:act=tanh:dropout=0.1").unwrap(),
            ModelSpec::Mlp {
                hidden: vec![64, 32],
                options: LayerOptions {
                    activation: Activation::Tanh,
                    dropout: 0.1
                }
            }
        );
        assert_eq!(
            ModelSpec::parse("mlp:dropout=0.5").unwrap(),
            ModelSpec::Mlp {
                hidden: DEFAULT_MLP_WIDTHS.to_vec(),
                options: LayerOptions {
                    activation: Activation::Relu,
                    dropout: 0.5
                }
            }
        );
        for bad in [
            "mlp:0",
            "mlp:8:act=swoosh",
            "mlp:8:dropout=1",
            "mlp:8:dropout=x",
            "mlp:8:act=tanh:act=relu",
            "mlp:8:width=3",
            "mlp:act=tanh:8",
            "resnet",
        ] {
            let err = ModelSpec::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("model:"), "{bad}: {err}");
        }
    }

    #[test]
    fn cnn_and_torchscript_syntax() {
        assert_eq!(
            ModelSpec::parse("cnn").unwrap(),
            ModelSpec::Cnn {
                channels: DEFAULT_CNN_CHANNELS.to_vec(),
                options: LayerOptions::default()
            }
        );
        assert!(matches!(
            ModelSpec::parse("cnn:8:act=gelu:dropout=0.25").unwrap(),
            ModelSpec::Cnn { channels, options } if channels == [8] && options.dropout == 0.25
        ));
        assert_eq!(
            ModelSpec::parse("torchscript:/m/net:v2.pt").unwrap(),
            ModelSpec::TorchScript {
                path: "/m/net:v2.pt".into()
            }
        );
        assert!(ModelSpec::parse("torchscript:net.pt").is_err());
        assert!(ModelSpec::parse("torchscript:").is_err());
    }

    #[test]
    fn parameter_counts() {
        let mlp = ModelSpec::parse("mlp:8,4").unwrap();
        assert_eq!(
            mlp.parameter_count(&[2], 3).unwrap(),
            Some(2 * 8 + 8 + 8 * 4 + 4 + 4 * 3 + 3)
        );
        // Images are flattened for an mlp.
        assert_eq!(
            mlp.parameter_count(&[1, 2, 2], 3).unwrap(),
            mlp.parameter_count(&[4], 3).unwrap()
        );
        let cnn = ModelSpec::parse("cnn:4,8").unwrap();
        // 8×8 → pool → 4×4 → pool → 2×2; head sees 8 × 2 × 2.
        let expected = (4 * 9 + 4) + (8 * 4 * 9 + 8) + (8 * 2 * 2 * 10 + 10);
        assert_eq!(cnn.parameter_count(&[1, 8, 8], 10).unwrap(), Some(expected));
        let err = cnn.parameter_count(&[4], 3).unwrap_err().to_string();
        assert!(err.contains("cnn needs image-shaped samples"), "{err}");
    }
}
