//! Where a model runs: this machine's CPU with codeplan's own kernels, or any candle device
//! (a CUDA GPU with the `cuda` feature) running candle's operations.

use candle_core::Device;

use crate::error::{ModelError, Result};

/// Where a model's weights live and its forward passes run.
#[derive(Clone, Debug, Default)]
pub enum Placement {
    /// The CPU, with codeplan's quantised kernels and fused decode step: the default, and the
    /// fastest path on a CPU.
    #[default]
    Cpu,
    /// A candle device running candle's operations only, weights and key/value cache on the
    /// device: how a CUDA GPU runs. `Candle(Device::Cpu)` is the same path on the CPU, which
    /// is how it is tested on machines without a GPU.
    Candle(Device),
}

impl Placement {
    /// Parses a `--device` value: `cpu`, `cuda` (the first GPU) or `cuda:N`.
    pub fn parse(spec: &str) -> Result<Self> {
        let ordinal = match spec.trim() {
            "cpu" => return Ok(Placement::Cpu),
            "cuda" => 0,
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => n,
                _ => {
                    return Err(ModelError::Device(format!(
                        "unknown device `{spec}`: expected cpu, cuda or cuda:N (N = the GPU's \
                         ordinal, e.g. cuda:1)"
                    )))
                }
            },
        };
        cuda(ordinal).map(Placement::Candle)
    }

    /// The candle device tensors are made on.
    pub fn device(&self) -> Device {
        match self {
            Placement::Cpu => Device::Cpu,
            Placement::Candle(device) => device.clone(),
        }
    }

    /// Whether codeplan's CPU kernels and fused decode step run (rather than candle's
    /// operations alone).
    pub fn native_kernels(&self) -> bool {
        matches!(self, Placement::Cpu)
    }

    /// How the placement is reported (`cpu`, `cuda:0`, `cpu (candle operations)`).
    pub fn describe(&self) -> String {
        use candle_core::DeviceLocation;
        match self {
            Placement::Cpu => "cpu".into(),
            Placement::Candle(device) => match device.location() {
                DeviceLocation::Cpu => "cpu (candle operations)".into(),
                DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
                DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
            },
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda(ordinal: usize) -> Result<Device> {
    Device::new_cuda(ordinal)
        .map_err(|e| ModelError::Device(format!("cannot open CUDA device cuda:{ordinal}: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn cuda(ordinal: usize) -> Result<Device> {
    Err(ModelError::Device(format!(
        "cuda:{ordinal} asked for, but this codeplan was built without CUDA support; rebuild \
         with `cargo build --release -p codeplan --features cuda` (needs the CUDA toolkit's \
         nvcc) or use --device cpu"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert!(matches!(Placement::parse("cpu").unwrap(), Placement::Cpu));
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", ""] {
            let e = Placement::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("unknown device") && e.contains("cuda:N"),
                "{bad}: {e}"
            );
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_get_it() {
        for spec in ["cuda", "cuda:1"] {
            let e = Placement::parse(spec).unwrap_err().to_string();
            assert!(
                e.contains("without CUDA support") && e.contains("--features cuda"),
                "{e}"
            );
        }
        assert!(Placement::parse("cuda:1")
            .unwrap_err()
            .to_string()
            .contains("cuda:1"));
    }
}
