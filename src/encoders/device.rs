//! Choosing the compute device and the dtype the encoder runs in.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// Where the model runs: `auto` tries CUDA, then Metal, then the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    /// A CUDA GPU by ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
    Metal,
}

impl FromStr for DeviceChoice {
    type Err = Error;

    /// Parses `auto`, `cpu`, `cuda`, `cuda:N` or `metal`.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            "metal" | "mps" => Ok(Self::Metal),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => Err(Error::Device(format!(
                    "unknown device \"{s}\" (expected auto, cpu, cuda, cuda:N or metal)"
                ))),
            },
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal => f.write_str("metal"),
        }
    }
}

impl DeviceChoice {
    /// Opens the device. A device this build was compiled without is an error naming the feature.
    ///
    /// ```
    /// let device = kompress::DeviceChoice::Cpu.open()?;
    /// assert!(device.is_cpu());
    /// # Ok::<(), kompress::Error>(())
    /// ```
    pub fn open(self) -> Result<Device> {
        self.open_explained().map(|(device, _)| device)
    }

    /// [`open`](Self::open), also returning why `auto` passed over each GPU back end it tried
    /// (empty for an explicit choice), so a front end can say what it picked and why.
    ///
    /// ```
    /// let (device, passed_over) = kompress::DeviceChoice::Auto.open_explained()?;
    /// if device.is_cpu() {
    ///     assert_eq!(passed_over.len(), 2); // CUDA and Metal, each with its reason
    /// }
    /// # Ok::<(), kompress::Error>(())
    /// ```
    pub fn open_explained(self) -> Result<(Device, Vec<String>)> {
        match self {
            Self::Cpu => Ok((Device::Cpu, Vec::new())),
            Self::Cuda(n) => Ok((open_cuda(n)?, Vec::new())),
            Self::Metal => Ok((open_metal()?, Vec::new())),
            Self::Auto => {
                let mut passed_over = Vec::new();
                let gpus: [fn() -> Result<Device>; 2] = [|| open_cuda(0), open_metal];
                for open in gpus {
                    match open() {
                        Ok(device) => return Ok((device, passed_over)),
                        Err(e) => passed_over.push(e.to_string()),
                    }
                }
                Ok((Device::Cpu, passed_over))
            }
        }
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<Device> {
    use candle_core::cuda_backend::cudarc::driver::CudaContext;
    // Checked first: the driver's own answer to a missing ordinal is an opaque CUDA_ERROR_INVALID_DEVICE.
    let count = CudaContext::device_count().map_err(|e| {
        // cudarc's Display is its Debug tuple; say what the driver says, then the code's name.
        let code = format!("{:?}", e.0);
        let said = e.error_string().map_or(code.clone(), |s| format!("{} ({code})", s.to_string_lossy()));
        Error::Device(format!("no usable CUDA driver: {said}"))
    })?;
    let count = usize::try_from(count).unwrap_or(0);
    if ordinal >= count {
        let have = match count {
            0 => "no CUDA device".to_string(),
            1 => "1 CUDA device (cuda:0)".to_string(),
            n => format!("{n} CUDA devices (cuda:0 to cuda:{})", n - 1),
        };
        return Err(Error::Device(format!("there is no CUDA device {ordinal}: this machine has {have}")));
    }
    Device::new_cuda(ordinal).map_err(|e| Error::Device(format!("cannot open CUDA device {ordinal}: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(_ordinal: usize) -> Result<Device> {
    Err(Error::Device("this build has no CUDA support: rebuild with `--features cuda`".into()))
}

fn open_metal() -> Result<Device> {
    if !cfg!(feature = "metal") {
        return Err(Error::Device("this build has no Metal support: rebuild with `--features metal`".into()));
    }
    Device::new_metal(0).map_err(|e| Error::Device(format!("cannot open the Metal device: {e}")))
}

/// A short name for a device, as the CLI prints it.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { .. } => "metal".into(),
    }
}

/// `a.matmul(b)`, refusing operand layouts that candle's GPU back ends refuse (Metal's MLX GEMM and
/// CUDA's cuBLAS call): each operand's last two dims must be row-major or transposed, and its batch
/// dims must fold into one stride. The CPU back end accepts any stride, so the check runs on every
/// device: a CPU test in f16 then walks the exact graph and layouts that a GPU runs.
pub(crate) fn gpu_matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    for (which, x) in [("left", a), ("right", b)] {
        if !gpu_gemm_layout(x.dims(), x.stride()) {
            return Err(Error::Layout(format!(
                "{which} matmul operand of shape {:?} has strides {:?}",
                x.dims(),
                x.stride()
            )));
        }
    }
    // AArch64 CPUs with FEAT_FP16 (Apple M1 and later): `gemm` multiplies f16 natively, accumulating
    // in f16, which on the fixtures put scores 6.4e-2 from f32's (1.2e-2 where it widens to f32, as on
    // x86 or without FEAT_FP16; measured under qemu-aarch64). Widened here, the CPU keeps f32 sums.
    if cfg!(target_arch = "aarch64") && a.device().is_cpu() && a.dtype() == DType::F16 {
        let wide = a.to_dtype(DType::F32)?.matmul(&b.to_dtype(DType::F32)?)?;
        return Ok(wide.to_dtype(DType::F16)?);
    }
    Ok(a.matmul(b)?)
}

/// The rule of candle 0.11's `call_mlx_gemm` (Metal) and `gemm_config` (CUDA) for one operand.
fn gpu_gemm_layout(dims: &[usize], stride: &[usize]) -> bool {
    let n = dims.len();
    if n < 2 {
        return false;
    }
    let (rows, cols, s_rows, s_cols) = (dims[n - 2], dims[n - 1], stride[n - 2], stride[n - 1]);
    let row_major = (s_cols == 1 || cols == 1) && (s_rows == cols || rows == 1);
    let transposed = (s_cols == rows || cols == 1) && (s_rows == 1 || rows == 1);
    // Metal reads a single batch stride (that of dim n - 3): outer batch dims must be its multiples.
    let batch_folds = (1..n.saturating_sub(2)).all(|i| dims[i] == 1 || stride[i - 1] == stride[i] * dims[i]);
    (row_major || transposed) && batch_folds
}

/// The dtype of the encoder's weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DTypeChoice {
    /// On the CPU bf16 ([`Linears::Bf16`]) where it beats f32: on AMX-BF16 tiles (Sapphire Rapids and
    /// later Xeons) and on AMD's `vdpbf16ps` (Zen 4 and later): 0.5-0.7x f32's forward time on a 2-core
    /// Sapphire Rapids and a 2-core Zen 4 EPYC, keep decisions as f32's on the stand-in model; else
    /// f32 (docs/NUMERICS.md says why); bf16 on CUDA, f16 on Metal.
    #[default]
    Auto,
    F32,
    F16,
    /// bf16 weights and activations on a GPU; on the CPU bf16 weights and f32 activations rounded to
    /// bf16 per product, accumulated in f32 ([`Linears::Bf16`]).
    BF16,
    /// Dynamic int8 (CPU only): weights quantised at load per output channel, activations per token.
    Int8,
    /// Weight-only int8 (CPU only): weights quantised at load per output channel, f32 activations.
    Int8Wo,
    /// Weight-only int8 (CPU only) with a scale per group of 128 inputs of each output channel.
    Int8WoG128,
}

impl FromStr for DTypeChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "f32" | "float32" => Ok(Self::F32),
            "f16" | "float16" | "half" => Ok(Self::F16),
            "bf16" | "bfloat16" => Ok(Self::BF16),
            "int8" | "i8" | "q8" | "int8-dyn" => Ok(Self::Int8),
            "int8-wo" | "int8wo" | "w8" => Ok(Self::Int8Wo),
            "int8-wo-g128" | "int8wo-g128" => Ok(Self::Int8WoG128),
            _ => Err(Error::Device(format!(
                "unknown dtype \"{s}\" (expected auto, f32, f16, bf16, int8, int8-wo or int8-wo-g128)"
            ))),
        }
    }
}

impl DTypeChoice {
    /// The choice for a reference's output (`--compat`, [`LlmLingua2`](crate::llmlingua2::LlmLingua2)):
    /// `auto` becomes f32, the references' numerics, since the narrow form `auto` picks on some CPUs
    /// (bf16) can move a word that sits near the threshold; an explicit choice stays.
    pub fn for_parity(self) -> Self {
        match self {
            Self::Auto => Self::F32,
            other => other,
        }
    }

    /// The concrete dtype of the activations on a device (f32 for the CPU's narrow forms).
    pub fn resolve(self, device: &Device) -> DType {
        self.precision_unchecked(device).dtype
    }

    /// The precision the model runs in on a device; the int8 forms anywhere but the CPU are an error.
    pub fn precision(self, device: &Device) -> Result<Precision> {
        let p = self.precision_unchecked(device);
        if p.linears.cpu_only() && !device.is_cpu() {
            return Err(Error::Device(format!("--dtype {} runs on the CPU only", p.name())));
        }
        Ok(p)
    }

    fn precision_unchecked(self, device: &Device) -> Precision {
        let cpu = device.is_cpu();
        let narrow = |linears| Precision { dtype: DType::F32, linears };
        match self {
            Self::F32 => DType::F32.into(),
            Self::F16 => DType::F16.into(),
            Self::BF16 if cpu => narrow(Linears::Bf16),
            Self::BF16 => DType::BF16.into(),
            Self::Int8 => narrow(Linears::Int8),
            Self::Int8Wo => narrow(Linears::Int8WeightOnly { group: None }),
            Self::Int8WoG128 => narrow(Linears::Int8WeightOnly { group: Some(128) }),
            Self::Auto if device.is_cuda() => DType::BF16.into(),
            Self::Auto if device.is_metal() => DType::F16.into(),
            Self::Auto if crate::kernels::weight_only::bf16::beats_f32() => narrow(Linears::Bf16),
            Self::Auto => DType::F32.into(),
        }
    }
}

/// How the encoder's linear layers (attention Wqkv and Wo, MLP Wi and Wo) hold their weights and
/// compute. Every form but `Native` runs on the CPU only, with f32 activations, which attention,
/// norms and heads keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linears {
    /// In the model's dtype.
    Native,
    /// Dynamic int8: weights per output channel, activations quantised per token at each call.
    Int8,
    /// Weight-only int8: weights per output channel (`group: None`) or per `group` inputs of a
    /// channel, widened in the kernel; f32 activations and accumulation.
    Int8WeightOnly { group: Option<usize> },
    /// bf16 weights, activations rounded to bf16 per product, f32 accumulation.
    Bf16,
}

impl Linears {
    /// Whether this form runs on the CPU only.
    pub fn cpu_only(self) -> bool {
        self != Self::Native
    }
}

/// What the encoder computes in: the dtype of its activations (and, for [`Linears::Native`], its
/// weights), and the form of its linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precision {
    pub dtype: DType,
    pub linears: Linears,
}

impl Precision {
    /// The name the CLI prints: the `--dtype` value that gives it.
    pub fn name(&self) -> &'static str {
        match self.linears {
            Linears::Native => self.dtype.as_str(),
            Linears::Int8 => "int8",
            Linears::Int8WeightOnly { group: None } => "int8-wo",
            Linears::Int8WeightOnly { group: Some(_) } => "int8-wo-g128",
            Linears::Bf16 => "bf16",
        }
    }

    /// An error unless this precision can run on `device`: the narrow forms need the CPU and f32
    /// activations.
    pub fn check(&self, device: &Device) -> Result<()> {
        if self.linears.cpu_only() && (!device.is_cpu() || self.dtype != DType::F32) {
            return Err(Error::Device(format!(
                "--dtype {} runs on the CPU only, with f32 activations",
                self.name()
            )));
        }
        Ok(())
    }
}

impl From<DType> for Precision {
    fn from(dtype: DType) -> Self {
        Self { dtype, linears: Linears::Native }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cuda:1".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(1));
        assert_eq!("CUDA".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cuda(0));
        assert!("tpu".parse::<DeviceChoice>().is_err());
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn missing_backends_name_their_feature() {
        if !cfg!(feature = "cuda") {
            let err = DeviceChoice::Cuda(0).open().unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
        if !cfg!(feature = "metal") {
            let err = DeviceChoice::Metal.open().unwrap_err().to_string();
            assert!(err.contains("--features metal"), "{err}");
        }
    }

    #[test]
    fn gpu_matmul_refuses_what_gpus_refuse() -> Result<()> {
        let x = Tensor::arange(0f32, 4.0 * 6.0 * 8.0, &Device::Cpu)?.reshape((4, 6, 8))?;
        let w = Tensor::ones((4, 8, 5), DType::F32, &Device::Cpu)?;
        gpu_matmul(&x, &w)?;
        gpu_matmul(&x, &x.t()?)?; // transposed-contiguous, as attention's k^T
                                  // Rows of a narrowed middle dim stay `cols` apart: accepted.
        gpu_matmul(&x.narrow(1, 1, 3)?, &w)?;
        // A narrowed last dim: rows no longer `cols` apart. The CPU multiplies it anyway.
        let (narrowed, w) = (x.narrow(2, 0, 4)?, w.narrow(1, 0, 4)?.contiguous()?);
        assert!(narrowed.matmul(&w).is_ok());
        let err = gpu_matmul(&narrowed, &w).unwrap_err().to_string();
        assert!(err.contains("strides [48, 8, 1]"), "{err}");
        // Two batch dims that do not fold into one stride.
        let batch = Tensor::zeros((2, 3, 4, 8), DType::F32, &Device::Cpu)?.narrow(1, 0, 2)?;
        let w = Tensor::ones((2, 2, 8, 5), DType::F32, &Device::Cpu)?;
        assert!(gpu_matmul(&batch, &w).is_err());
        assert!(gpu_matmul(&batch.contiguous()?, &w).is_ok());
        Ok(())
    }

    #[test]
    fn auto_dtype_on_cpu_is_bf16_where_it_beats_f32() {
        let auto = DTypeChoice::Auto.precision(&Device::Cpu).unwrap();
        let want =
            if crate::kernels::weight_only::bf16::beats_f32() { Linears::Bf16 } else { Linears::Native };
        assert_eq!((auto.dtype, auto.linears), (DType::F32, want));
        let bf16 = "bf16".parse::<DTypeChoice>().unwrap().precision(&Device::Cpu).unwrap();
        assert_eq!((bf16.dtype, bf16.linears, bf16.name()), (DType::F32, Linears::Bf16, "bf16"));
    }

    #[test]
    fn weight_only_forms_parse_and_name_themselves() {
        for (name, group) in [("int8-wo", None), ("W8", None), ("int8-wo-g128", Some(128))] {
            let p = name.parse::<DTypeChoice>().unwrap().precision(&Device::Cpu).unwrap();
            assert_eq!((p.dtype, p.linears), (DType::F32, Linears::Int8WeightOnly { group }));
            assert_eq!(p.name().parse::<DTypeChoice>().unwrap(), name.parse().unwrap());
        }
    }

    #[test]
    fn int8_parses_and_runs_on_the_cpu_only() {
        for name in ["int8", "I8", "q8"] {
            assert_eq!(name.parse::<DTypeChoice>().unwrap(), DTypeChoice::Int8);
        }
        let p = DTypeChoice::Int8.precision(&Device::Cpu).unwrap();
        assert_eq!((p.dtype, p.linears, p.name()), (DType::F32, Linears::Int8, "int8"));
        assert_eq!(DTypeChoice::F32.precision(&Device::Cpu).unwrap().name(), "f32");
        let err = "fp4".parse::<DTypeChoice>().unwrap_err().to_string();
        assert!(err.contains("int8-wo or int8-wo-g128"), "{err}");
    }
}
