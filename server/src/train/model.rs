//! Models, built on a tch `VarStore` so parameters are named as PyTorch names them.

use tch::{nn, Device, Tensor};

use crate::spec::{rates::ParamInfo, ModelSpec};

/// A model and its parameters in layer order (first layer first, head last).
pub struct Model {
    layers: Vec<nn::Linear>,
    head: nn::Linear,
    parameters: Vec<(String, Tensor)>,
}

impl Model {
    /// Builds the model's layers under `root`: `layer0`, `layer1`, ..., `head`.
    pub fn build(root: &nn::Path, spec: &ModelSpec, inputs: i64, outputs: i64) -> Model {
        let ModelSpec::Mlp { hidden } = spec;
        let mut layers = Vec::with_capacity(hidden.len());
        let mut parameters = Vec::new();
        let mut width = inputs;
        for (i, &next) in hidden.iter().enumerate() {
            let name = format!("layer{i}");
            let layer = nn::linear(root / name.as_str(), width, next, Default::default());
            push_linear(&mut parameters, &name, &layer);
            layers.push(layer);
            width = next;
        }
        let head = nn::linear(root / "head", width, outputs, Default::default());
        push_linear(&mut parameters, "head", &head);
        Model {
            layers,
            head,
            parameters,
        }
    }

    /// Logits (classification) or predictions (regression) for a batch.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, tch::TchError> {
        let mut h = x.shallow_clone();
        for layer in &self.layers {
            h = h.f_linear(&layer.ws, layer.bs.as_ref())?.f_relu()?;
        }
        h.f_linear(&self.head.ws, self.head.bs.as_ref())
    }

    /// Parameters in layer order, named like `layer0.weight`.
    pub fn parameters(&self) -> &[(String, Tensor)] {
        &self.parameters
    }

    pub fn parameter_infos(&self) -> Vec<ParamInfo> {
        self.parameters
            .iter()
            .map(|(name, t)| ParamInfo::new(name, t.size()))
            .collect()
    }
}

fn push_linear(parameters: &mut Vec<(String, Tensor)>, name: &str, layer: &nn::Linear) {
    parameters.push((format!("{name}.weight"), layer.ws.shallow_clone()));
    if let Some(bias) = &layer.bs {
        parameters.push((format!("{name}.bias"), bias.shallow_clone()));
    }
}

/// The parameters a model of `spec` has, without training anything (for validation and dry runs).
pub fn describe_parameters(spec: &ModelSpec, inputs: i64, outputs: i64) -> Vec<ParamInfo> {
    let vs = nn::VarStore::new(Device::Cpu);
    Model::build(&vs.root(), spec, inputs, outputs).parameter_infos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_shapes_like_pytorch() {
        let infos = describe_parameters(&ModelSpec::Mlp { hidden: vec![8, 4] }, 2, 3);
        let names: Vec<&str> = infos.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
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
}
