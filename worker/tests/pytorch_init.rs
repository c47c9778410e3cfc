//! Strata's built-in layers start from PyTorch's own numbers: with the same seed, an `mlp`
//! initializes exactly as `nn.Linear`s built in the same order do (same libtorch, same draws in
//! the same order, the same bounds to the last bit).
//!
//! Its own test binary: libtorch's random generator is global, and no other test may draw from it
//! between the seeding and the build.

use strata_server::spec::model::ModelSpec;
use strata_worker::train::model::Model;
use tch::{Device, Kind};

/// `torch.manual_seed(7)` then three `nn.Linear`s, against `mlp:4,3` on 5 inputs and 2 outputs
/// with the same seed. Needs python3 and the project's `.torch/` (skips, saying why, without).
#[test]
fn the_same_seed_gives_pytorchs_own_initial_weights() {
    let torch = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.torch");
    let program = "import torch\n\
        torch.manual_seed(7)\n\
        layers = [torch.nn.Linear(5, 4), torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)]\n\
        for layer in layers:\n\
        \x20   for p in (layer.weight, layer.bias):\n\
        \x20       print(' '.join(float(v).hex() for v in p.detach().flatten().tolist()))\n";
    let output = std::process::Command::new("python3")
        .args(["-c", program])
        .env("PYTHONPATH", &torch)
        .output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            eprintln!(
                "skipped: PyTorch could not run from {}: {}",
                torch.display(),
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            return;
        }
        Err(err) => {
            eprintln!("skipped: python3 did not run ({err})");
            return;
        }
    };
    let expected: Vec<Vec<f64>> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line.split(' ').map(parse_hex_float).collect())
        .collect();

    tch::manual_seed(7);
    let spec = ModelSpec::parse("mlp:4,3").unwrap();
    let model = Model::build(&spec, &[5], 2, Device::Cpu).unwrap();
    assert_eq!(model.parameters().len(), expected.len());
    for ((name, tensor), theirs) in model.parameters().iter().zip(&expected) {
        let ours = Vec::<f64>::try_from(tensor.flatten(0, -1).to_kind(Kind::Double)).unwrap();
        assert_eq!(&ours, theirs, "{name} differs from PyTorch's");
    }
}

/// Python's `float.hex()` back to the number (exact: every step is a power of two).
fn parse_hex_float(text: &str) -> f64 {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text),
    };
    let rest = rest.strip_prefix("0x").expect("a hex float");
    let (mantissa, exponent) = rest.split_once('p').expect("an exponent");
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut value = u64::from_str_radix(int, 16).unwrap() as f64;
    let mut scale = 1.0 / 16.0;
    for digit in frac.chars() {
        value += f64::from(digit.to_digit(16).unwrap()) * scale;
        scale /= 16.0;
    }
    sign * value * 2f64.powi(exponent.parse().unwrap())
}
