//! Arguments and input handling shared by the model commands.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use candle_core::Device;
use clap::Args;
use kompress::hub::ModelFiles;
use kompress::method::Methods;
use kompress::{DTypeChoice, DeviceChoice, HubOptions, Kompress};
use serde_json::Value;

/// Which model to load, and where to run it.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A local model directory (config.json, tokenizer.json, and merged.pt, model.safetensors or
    /// pytorch_model.bin) or a Hugging Face repo id, downloaded into the HF cache.
    #[arg(long, short, default_value = kompress::hub::DEFAULT_MODEL)]
    pub model: String,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// How to load a model (any model: `kompress serve` loads several), and where to run it.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Branch, tag or commit of the Hugging Face repo.
    #[arg(long)]
    pub revision: Option<String>,
    /// Use only the local HF cache; a missing file is an error that names it.
    #[arg(long, env = "HF_HUB_OFFLINE", value_parser = clap::builder::FalseyValueParser::new())]
    pub offline: bool,
    /// auto (CUDA, then Metal, then CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// auto, f32, f16, bf16, int8, int8-wo or int8-wo-g128. auto: on the CPU bf16 where it beats f32
    /// (AMX-BF16 tiles: Sapphire Rapids and later Xeons; AMD's vdpbf16ps: Zen 4 and later), else f32,
    /// and f32 under --compat; bf16 on CUDA, f16 on Metal. On the CPU the narrow forms keep f32 activations, norms, attention and heads:
    /// bf16 = bf16 weights, activations rounded to bf16 per product, f32 sums; int8 = dynamic int8
    /// (weights per channel, activations per token: the fastest on CPUs with VNNI or AMX, the least
    /// faithful: Headroom measured 90.5% keep agreement with fp32 for its ONNX form of it on the real
    /// kompress-base); int8-wo = int8 weights per output channel widened in the kernel (Headroom's
    /// weight-only ONNX form: 99.6%; about f32's speed, a quarter of its weight memory); int8-wo-g128
    /// = a scale per group of 128 inputs. Speeds per CPU kind (Sapphire Rapids Xeon, Zen 4 EPYC): docs/NUMERICS.md.
    #[arg(long, default_value = "auto", env = "KOMPRESS_DTYPE")]
    pub dtype: DTypeChoice,
    /// Print what was loaded and where it runs on stderr.
    #[arg(long, short)]
    pub verbose: bool,
}

/// A model command reads the loading flags through its `--model`'s arguments.
impl std::ops::Deref for ModelArgs {
    type Target = LoadArgs;
    fn deref(&self) -> &LoadArgs {
        &self.load
    }
}

impl std::ops::DerefMut for ModelArgs {
    fn deref_mut(&mut self) -> &mut LoadArgs {
        &mut self.load
    }
}

impl ModelArgs {
    /// The model with the compression methods it runs, `batch_size` chunks or windows a pass for
    /// LLMLingua-2 and ctxprune (their defaults without one).
    pub fn load_methods(&self, batch_size: Option<usize>) -> anyhow::Result<Methods> {
        let methods = Methods::new(std::sync::Arc::new(self.load()?));
        Ok(match batch_size {
            Some(size) => methods.with_batch_size(size),
            None => methods,
        })
    }

    pub fn load(&self) -> anyhow::Result<Kompress> {
        self.load_on(&self.open_device()?)
    }

    /// [`load`](Self::load) onto a device already opened with [`open_device`](LoadArgs::open_device).
    pub fn load_on(&self, device: &Device) -> anyhow::Result<Kompress> {
        self.load.load_on(&self.model, device)
    }
}

impl LoadArgs {
    /// `--compat` promises a reference's output: `auto` is f32 there ([`DTypeChoice::for_parity`]).
    pub fn follow_compat(&mut self, compat: Option<&str>) {
        if matches!(compat, Some("headroom" | "llmlingua2" | "ctxprune")) {
            self.dtype = self.dtype.for_parity();
        }
    }

    /// `model` (a directory or a hub id) onto a device already opened with
    /// [`open_device`](Self::open_device).
    pub fn load_on(&self, model: &str, device: &Device) -> anyhow::Result<Kompress> {
        let hub = HubOptions {
            revision: self.revision.clone(),
            offline: self.offline,
            cache_dir: None,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        };
        let load = || {
            let files = ModelFiles::locate(model, &hub).map_err(with_remedy)?;
            anyhow::Ok(Kompress::from_files_on(&files, device, self.dtype)?)
        };
        let started = std::time::Instant::now();
        let loaded = load().with_context(|| format!("cannot load model {model}"))?;
        if self.verbose {
            let t = loaded.load_times();
            eprintln!(
                "kompress: model {} ({} layers) as {}, loaded in {:.3} s (checkpoint open {:.3} s, layers read and laid out \
                 {:.3} s, tokenizer {:.3} s on its own thread)",
                model,
                loaded.config().num_layers(),
                loaded.precision().name(),
                started.elapsed().as_secs_f64(),
                t.open.as_secs_f64(),
                t.network.as_secs_f64(),
                t.tokenizer.as_secs_f64()
            );
        }
        Ok(loaded)
    }

    /// Opens `--device`; with `-v`, says on stderr which device it is and, for `auto`, why each GPU
    /// back end was passed over.
    pub fn open_device(&self) -> anyhow::Result<Device> {
        let (device, passed_over) = self.device.open_explained()?;
        if self.verbose {
            eprintln!(
                "kompress: device {} (--device {})",
                kompress::device::device_name(&device),
                self.device
            );
            for reason in passed_over {
                eprintln!("kompress:   passed over: {reason}");
            }
        }
        Ok(device)
    }
}

/// A model that is neither reachable nor cached gets the two ways out, in the flags' words.
fn with_remedy(err: kompress::Error) -> anyhow::Error {
    let kompress::Error::NotCached { offline, .. } = &err else { return err.into() };
    let download = match offline {
        true => "run once online without --offline (and HF_HUB_OFFLINE unset) to download it there",
        false => "run again with network access to download it there",
    };
    anyhow::anyhow!(
        "{err}; use --model DIR for a local model directory (a kompress checkout has small test models in \
         tests/fixtures/models), or {download}"
    )
}

/// Reads a whole input: a file, or standard input for `-` or no path. Text must be UTF-8.
pub fn read_text(path: Option<&PathBuf>) -> anyhow::Result<String> {
    read_input(path, None)
}

/// [`read_text`] for a command with `--lossy`: `Some(true)` turns invalid UTF-8 into U+FFFD,
/// `Some(false)` makes it an error that points at `--lossy`.
pub fn read_input(path: Option<&PathBuf>, lossy: Option<bool>) -> anyhow::Result<String> {
    let (bytes, name) = match file_arg(path) {
        Some(p) => (
            std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
            p.display().to_string(),
        ),
        None => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).context("cannot read standard input")?;
            (buf, "standard input".to_string())
        }
    };
    decode(bytes, &name, lossy)
}

/// The file a path argument names: `None` for `-` or no path, which mean standard input.
pub fn file_arg(path: Option<&PathBuf>) -> Option<&PathBuf> {
    path.filter(|p| p.as_os_str() != "-")
}

/// `bytes` as text; `lossy` as in [`read_input`]. An error names `what` and the first invalid byte.
pub fn decode(bytes: Vec<u8>, what: &str, lossy: Option<bool>) -> anyhow::Result<String> {
    let e = match String::from_utf8(bytes) {
        Ok(text) => return Ok(text),
        Err(e) if lossy == Some(true) => return Ok(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        Err(e) => e,
    };
    let hint = if lossy.is_some() { " (--lossy replaces invalid bytes)" } else { "" };
    anyhow::bail!("{what} is not valid UTF-8 (invalid byte at offset {}){hint}", e.utf8_error().valid_up_to())
}

/// Writes a command's output to standard output. A closed pipe comes back as an error that `main`
/// turns into a quiet exit.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).context("cannot write to standard output")
}

/// A reader of `path`, or of standard input for `-`/nothing.
pub(crate) fn open(path: Option<&PathBuf>) -> anyhow::Result<Box<dyn BufRead>> {
    Ok(match file_arg(path) {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    })
}

/// One corpus line as text: a JSON string, a JSON object's "text" string, or the raw line (a line that
/// is not a JSON string or object).
pub fn corpus_text(line: &[u8], lossy: bool) -> anyhow::Result<String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let raw = decode(line.to_vec(), "the line", Some(lossy))?;
    Ok(match serde_json::from_str::<Value>(&raw) {
        Ok(Value::String(text)) => text,
        Ok(Value::Object(mut o)) => match o.remove("text") {
            Some(Value::String(text)) => text,
            Some(other) => anyhow::bail!("its \"text\" field is {}, not a string", json_kind(&other)),
            None => anyhow::bail!("a JSON object without a \"text\" field"),
        },
        _ => raw,
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn input_name(path: Option<&PathBuf>) -> String {
    file_arg(path).map_or("-".to_string(), |p| p.display().to_string())
}
