//! Optimizers with one learning rate per parameter and state that can be checkpointed.
//!
//! libtorch's optimizers behind tch cannot save their state, and a resumed run must continue
//! with its momentum and Adam moments, not restart them. These follow PyTorch's update rules
//! (`torch.optim.SGD`, `Adam`, `AdamW`) exactly, on the tensor side, without gradients.
//! A frozen parameter is skipped entirely: no update, no momentum, no weight decay.

use std::collections::HashMap;

use tch::{Device, Kind, TchError, Tensor};

use strata_server::spec::{OptimizerKind, OptimizerSpec};

const ADAM_BETA1: f64 = 0.9;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;
/// The largest factor the Adam step pre-scales its denominator by (1/step, for a rate's step):
/// far inside f32's range (3.4e38), so the scaled values stay finite.
const MAX_PRESCALE: f64 = 1e30;

struct ParamSlot {
    name: String,
    tensor: Tensor,
    /// Base rate; the schedule's multiplier applies on top at each step.
    lr: f64,
    /// SGD: the momentum buffer. Adam/AdamW: exp_avg and exp_avg_sq. Created lazily.
    state: Vec<Tensor>,
    /// Updates applied to this parameter (Adam's bias correction counts per parameter, so a
    /// layer unfrozen late starts its correction from 1, as in PyTorch).
    steps: i64,
}

pub struct Optimizer {
    spec: OptimizerSpec,
    slots: Vec<ParamSlot>,
}

impl Optimizer {
    /// `params` are the model's named parameters with their resolved base rates.
    pub fn new(spec: OptimizerSpec, params: Vec<(String, Tensor, f64)>) -> Self {
        let slots = params
            .into_iter()
            .map(|(name, tensor, lr)| ParamSlot {
                name,
                tensor,
                lr,
                state: Vec::new(),
                steps: 0,
            })
            .collect();
        Optimizer { spec, slots }
    }

    /// Sets the base rate of the `index`-th parameter (the range test sweeps a group's rate).
    pub fn set_rate(&mut self, index: usize, lr: f64) {
        if let Some(slot) = self.slots.get_mut(index) {
            slot.lr = lr;
        }
    }

    /// Clears the gradients of every parameter.
    pub fn zero_grad(&mut self) {
        for slot in &mut self.slots {
            slot.tensor.zero_grad();
        }
    }

    /// One update of every parameter not in `frozen`, at `base rate × multiplier`.
    pub fn step(&mut self, multiplier: f64, frozen: &[bool]) -> Result<(), TchError> {
        let spec = self.spec;
        tch::no_grad(|| {
            if let Some(max_norm) = spec.clip_grad_norm {
                self.clip_grad_norm(max_norm, frozen)?;
            }
            for (slot, &is_frozen) in self.slots.iter_mut().zip(frozen) {
                if is_frozen {
                    continue;
                }
                let grad = slot.tensor.grad();
                if !grad.defined() {
                    continue;
                }
                slot.steps += 1;
                update(spec, slot, &grad, slot.lr * multiplier)?;
            }
            Ok(())
        })
    }

    /// Scales the trained parameters' gradients so their total L2 norm is at most `max_norm`, as
    /// `torch.nn.utils.clip_grad_norm_` does, on the device (no sync).
    fn clip_grad_norm(&mut self, max_norm: f64, frozen: &[bool]) -> Result<(), TchError> {
        let grads: Vec<Tensor> = self
            .slots
            .iter()
            .zip(frozen)
            .filter(|(_, &is_frozen)| !is_frozen)
            .map(|(slot, _)| slot.tensor.grad())
            .filter(|g| g.defined())
            .collect();
        if grads.is_empty() {
            return Ok(());
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.f_norm()).collect::<Result<_, _>>()?;
        let total = Tensor::f_stack(&norms, 0)?.f_norm()?;
        let coefficient = total
            .f_add_scalar(1e-6)?
            .f_reciprocal()?
            .f_mul_scalar(max_norm)?
            .f_clamp_max(1.0)?;
        for mut grad in grads {
            let _ = grad.f_mul_(&coefficient)?;
        }
        Ok(())
    }

    /// The optimizer's state as named tensors, for a checkpoint.
    pub fn state_tensors(&self) -> Result<Vec<(String, Tensor)>, TchError> {
        let mut named = Vec::new();
        for slot in &self.slots {
            named.push((
                format!("optim.{}.steps", slot.name),
                Tensor::f_from_slice(&[slot.steps])?,
            ));
            for (i, state) in slot.state.iter().enumerate() {
                named.push((
                    format!("optim.{}.state{i}", slot.name),
                    state.shallow_clone(),
                ));
            }
        }
        Ok(named)
    }

    /// Restores state written by [`Optimizer::state_tensors`].
    pub fn load_state(
        &mut self,
        named: &HashMap<String, Tensor>,
        device: Device,
    ) -> Result<(), TchError> {
        for slot in &mut self.slots {
            if let Some(steps) = named.get(&format!("optim.{}.steps", slot.name)) {
                slot.steps = steps.f_int64_value(&[0])?;
            }
            slot.state.clear();
            while let Some(state) =
                named.get(&format!("optim.{}.state{}", slot.name, slot.state.len()))
            {
                slot.state.push(state.f_to_device(device)?);
            }
        }
        Ok(())
    }
}

fn state_slot(slot: &mut ParamSlot, count: usize) -> Result<(), TchError> {
    while slot.state.len() < count {
        slot.state.push(slot.tensor.f_zeros_like()?);
    }
    Ok(())
}

fn update(
    spec: OptimizerSpec,
    slot: &mut ParamSlot,
    grad: &Tensor,
    lr: f64,
) -> Result<(), TchError> {
    let wd = spec.weight_decay;
    let mut param = slot.tensor.shallow_clone();
    match spec.kind {
        OptimizerKind::Sgd { momentum } => {
            let grad = if wd != 0.0 {
                grad.f_add(&param.f_mul_scalar(wd)?)?
            } else {
                grad.shallow_clone()
            };
            let direction = if momentum != 0.0 {
                let first = slot.state.is_empty();
                state_slot(slot, 1)?;
                let buf = &mut slot.state[0];
                if first {
                    buf.f_copy_(&grad)?;
                } else {
                    let _ = buf.f_mul_scalar_(momentum)?;
                    let _ = buf.f_add_(&grad)?;
                }
                buf.shallow_clone()
            } else {
                grad
            };
            let _ = param.f_sub_(&direction.f_mul_scalar(lr)?)?;
        }
        OptimizerKind::Adam | OptimizerKind::AdamW => {
            let grad = match spec.kind {
                OptimizerKind::Adam if wd != 0.0 => grad.f_add(&param.f_mul_scalar(wd)?)?,
                OptimizerKind::AdamW if wd != 0.0 => {
                    let _ = param.f_mul_scalar_(1.0 - lr * wd)?;
                    grad.shallow_clone()
                }
                _ => grad.shallow_clone(),
            };
            state_slot(slot, 2)?;
            let step = slot.steps as i32;
            let (exp_avg, exp_avg_sq) = slot.state.split_at_mut(1);
            let (exp_avg, exp_avg_sq) = (&mut exp_avg[0], &mut exp_avg_sq[0]);
            // As torch.optim.Adam's single-tensor path, in as few kernels as tch's API allows
            // (it has no fused or foreach Adam): m ← lerp(m, g, 1−β1), v ← lerp(v, g², 1−β2),
            // p ← p − step·m / (√v/√bc2 + ε), the last as one addcdiv_ with the denominator
            // pre-scaled by −1/step.
            let _ = exp_avg.f_lerp_(&grad, 1.0 - ADAM_BETA1)?;
            let _ = exp_avg_sq.f_lerp_(&grad.f_square()?, 1.0 - ADAM_BETA2)?;
            let bias_correction1 = 1.0 - ADAM_BETA1.powi(step);
            let bias_correction2 = 1.0 - ADAM_BETA2.powi(step);
            let step_size = lr / bias_correction1;
            let mut denom = exp_avg_sq.f_sqrt()?;
            let scale = -1.0 / (step_size * bias_correction2.sqrt());
            if scale.abs() < MAX_PRESCALE {
                let _ = denom.f_mul_scalar_(scale)?;
                let _ = denom.f_add_scalar_(-ADAM_EPS / step_size)?;
                let _ = param.f_addcdiv_(exp_avg, &denom)?;
            } else {
                // A rate so small that 1/step overflows a float: the pre-scaled denominator
                // would be infinite (and 0·∞ NaN). Torch's own order of operations instead:
                // p ← p − step·m / (√v/√bc2 + ε), an update that underflows to about nothing.
                let _ = denom.f_div_scalar_(bias_correction2.sqrt())?;
                let _ = denom.f_add_scalar_(ADAM_EPS)?;
                let update = exp_avg.f_div(&denom)?.f_mul_scalar(step_size)?;
                let _ = param.f_sub_(&update)?;
            }
        }
    }
    Ok(())
}

/// Squared L2 norm, summed over tensors, in double precision.
pub fn squared_norm<'a>(tensors: impl Iterator<Item = &'a Tensor>) -> Result<f64, TchError> {
    let mut total = 0.0;
    for t in tensors {
        total += t.f_square()?.f_sum(Kind::Double)?.f_double_value(&[])?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, OptimizerConfig};

    /// Our update rules match libtorch's own optimizers step for step.
    fn matches_libtorch(kind: OptimizerKind, weight_decay: f64) {
        tch::manual_seed(3);
        let target = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
        let ours_vs = nn::VarStore::new(Device::Cpu);
        let theirs_vs = nn::VarStore::new(Device::Cpu);
        let init = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
        let ours = ours_vs.root().var_copy("w", &init);
        let theirs = theirs_vs.root().var_copy("w", &init);
        let lr = 0.05;
        let mut optimizer = Optimizer::new(
            OptimizerSpec {
                kind,
                weight_decay,
                clip_grad_norm: None,
            },
            vec![("w".into(), ours.shallow_clone(), lr)],
        );
        let mut reference = match kind {
            OptimizerKind::Sgd { momentum } => nn::Sgd {
                momentum,
                dampening: 0.0,
                wd: weight_decay,
                nesterov: false,
            }
            .build(&theirs_vs, lr)
            .unwrap(),
            OptimizerKind::Adam => nn::Adam {
                wd: weight_decay,
                ..Default::default()
            }
            .build(&theirs_vs, lr)
            .unwrap(),
            OptimizerKind::AdamW => nn::AdamW {
                wd: weight_decay,
                ..Default::default()
            }
            .build(&theirs_vs, lr)
            .unwrap(),
        };
        for _ in 0..5 {
            optimizer.zero_grad();
            (&ours - &target).square().sum(Kind::Float).backward();
            optimizer.step(1.0, &[false]).unwrap();
            reference.zero_grad();
            (&theirs - &target).square().sum(Kind::Float).backward();
            reference.step();
        }
        let diff = (&ours - &theirs).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{kind:?} differs from libtorch by {diff}");
    }

    #[test]
    fn sgd_with_momentum_and_decay_matches_libtorch() {
        matches_libtorch(OptimizerKind::Sgd { momentum: 0.9 }, 0.01);
        matches_libtorch(OptimizerKind::Sgd { momentum: 0.0 }, 0.0);
    }

    #[test]
    fn adam_and_adamw_match_libtorch() {
        matches_libtorch(OptimizerKind::Adam, 0.0);
        matches_libtorch(OptimizerKind::Adam, 0.01);
        matches_libtorch(OptimizerKind::AdamW, 0.01);
    }

    #[test]
    fn gradients_are_clipped_to_the_total_norm() {
        let vs = nn::VarStore::new(Device::Cpu);
        let a = vs.root().var("a", &[2], nn::Init::Const(0.0));
        let b = vs.root().var("b", &[2], nn::Init::Const(0.0));
        let spec = OptimizerSpec {
            kind: OptimizerKind::Sgd { momentum: 0.0 },
            weight_decay: 0.0,
            clip_grad_norm: Some(1.0),
        };
        let mut optimizer = Optimizer::new(
            spec,
            vec![
                ("a".into(), a.shallow_clone(), 1.0),
                ("b".into(), b.shallow_clone(), 1.0),
            ],
        );
        // Gradients (3, 3) and (4, 4): total norm sqrt(50); clipped to norm 1, each step moves
        // the parameters by -g / sqrt(50).
        ((&a * 3.0).sum(Kind::Float) + (&b * 4.0).sum(Kind::Float)).backward();
        optimizer.step(1.0, &[false, false]).unwrap();
        let moved = (a.square().sum(Kind::Double) + b.square().sum(Kind::Double))
            .sqrt()
            .double_value(&[]);
        assert!((moved - 1.0).abs() < 1e-5, "{moved}");
    }

    #[test]
    fn a_vanishing_adam_rate_moves_nothing_and_makes_no_nan() {
        // 1/step overflows a float at 1e-40; a zero gradient (√v = 0) then made 0·∞ = NaN.
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[2], nn::Init::Const(1.0));
        let before = w.detach().copy();
        let spec = OptimizerSpec {
            kind: OptimizerKind::Adam,
            weight_decay: 0.0,
            clip_grad_norm: None,
        };
        let mut optimizer = Optimizer::new(spec, vec![("w".into(), w.shallow_clone(), 1e-40)]);
        let mask = Tensor::from_slice(&[1.0f32, 0.0]);
        (&w * &mask).sum(Kind::Float).backward();
        optimizer.step(1.0, &[false]).unwrap();
        assert!(w.isfinite().all().int64_value(&[]) == 1, "{w}");
        assert!(w.allclose(&before, 0.0, 1e-12, false));
    }

    #[test]
    fn frozen_parameters_do_not_move_and_state_round_trips() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[3], nn::Init::Const(1.0));
        let before = w.detach().copy();
        let spec = OptimizerSpec {
            kind: OptimizerKind::Adam,
            weight_decay: 0.1,
            clip_grad_norm: None,
        };
        let mut optimizer = Optimizer::new(spec, vec![("w".into(), w.shallow_clone(), 0.1)]);
        w.sum(Kind::Float).backward();
        optimizer.step(1.0, &[true]).unwrap();
        assert!(w.equal(&before));
        optimizer.step(1.0, &[false]).unwrap();
        assert!(!w.equal(&before));
        let saved: HashMap<String, Tensor> =
            optimizer.state_tensors().unwrap().into_iter().collect();
        let mut restored = Optimizer::new(spec, vec![("w".into(), w.shallow_clone(), 0.1)]);
        restored.load_state(&saved, Device::Cpu).unwrap();
        assert_eq!(restored.slots[0].steps, 1);
        assert!(restored.slots[0].state[1].equal(&optimizer.slots[0].state[1]));
    }
}
