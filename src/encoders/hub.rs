//! Where a model's files come from: a local directory, or a Hugging Face repo fetched into the
//! standard HF cache (feature `hub`).
//!
//! A Kompress weights repo may lack a ModernBERT `config.json` or `tokenizer.json`; those then come
//! from `answerdotai/ModernBERT-base` at the revision the reference pins ([`BASE_REVISION`]).

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The model `kompress` uses when none is named.
pub const DEFAULT_MODEL: &str = "chopratejas/kompress-base";
/// The encoder repo whose config and tokenizer the reference uses.
pub const BASE_REPO: &str = "answerdotai/ModernBERT-base";
/// The revision of [`BASE_REPO`] pinned by Headroom 0.42 (`onnx_runtime._PINNED_REVISIONS`).
pub const BASE_REVISION: &str = "8949b909ec900327062f0ebf497f51aef5e6f0c8";
/// Weight files in order of preference: a kompress-v2 repo also holds a `model.safetensors`, but
/// that one is an unmerged LoRA adapter, so `merged.pt` must win; `pytorch_model.bin` (a state dict
/// as older `transformers` saved it) only where neither exists.
pub const WEIGHT_FILES: [&str; 3] = ["merged.pt", "model.safetensors", "pytorch_model.bin"];

/// [`WEIGHT_FILES`] as a message names them.
fn weight_files_named() -> String {
    let (last, first) = WEIGHT_FILES.split_last().expect("weight files");
    format!("{} or {last}", first.join(", "))
}

/// The three files a model needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    pub config: PathBuf,
    pub tokenizer: PathBuf,
    pub weights: PathBuf,
}

impl ModelFiles {
    /// A directory holding `config.json`, `tokenizer.json` and one of [`WEIGHT_FILES`].
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let missing = |reason: String| Error::ModelDir { dir: dir.to_path_buf(), reason };
        if !dir.is_dir() {
            let reason = if dir.exists() { "not a directory" } else { "does not exist" };
            return Err(missing(reason.into()));
        }
        let file = |name: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            match path.is_file() {
                true => Ok(path),
                false => Err(missing(format!("no {name}"))),
            }
        };
        let weights = WEIGHT_FILES
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| missing(format!("no weights ({})", weight_files_named())))?;
        Ok(Self { config: file("config.json")?, tokenizer: file("tokenizer.json")?, weights })
    }
}

/// How to reach the hub.
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    /// A branch, tag or commit of the weights repo (default `main`).
    pub revision: Option<String>,
    /// Use only the local cache (also switched on by `HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// The HF cache (default: `$HF_HOME/hub` or `~/.cache/huggingface/hub`).
    pub cache_dir: Option<PathBuf>,
    /// Show download progress bars on stderr.
    pub progress: bool,
}

impl HubOptions {
    /// Whether only the cache may be used: asked for, or set in the environment as the HF tools do.
    pub fn is_offline(&self) -> bool {
        self.offline
            || std::env::var("HF_HUB_OFFLINE")
                .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
    }
}

#[cfg(feature = "hub")]
mod fetch {
    use std::path::PathBuf;

    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};

    use super::{HubOptions, ModelFiles, BASE_REPO, BASE_REVISION, WEIGHT_FILES};
    use crate::{Error, Result};

    /// One repo at one revision, read from the cache or (online) from the hub.
    struct Source {
        repo: Repo,
        cache: Cache,
        api: Option<hf_hub::api::sync::ApiRepo>,
        /// The repo's file list when online; offline, files are probed in the cache.
        listing: Option<Vec<String>>,
        /// Why the hub is not used: `None` online, else offline mode or the hub's error.
        cache_only: Option<(bool, String)>,
    }

    impl Source {
        /// Lists the repo on the hub, or uses only the cache when offline or when the hub cannot be
        /// listed (as the HF tools do, a model downloaded before still works without a network).
        fn open(id: &str, revision: &str, opts: &HubOptions) -> Result<Self> {
            let repo = Repo::with_revision(id.to_string(), RepoType::Model, revision.to_string());
            let cache = opts.cache_dir.clone().map_or_else(Cache::from_env, Cache::new);
            let cache_only = |offline, reason| Self {
                repo: repo.clone(),
                cache: cache.clone(),
                api: None,
                listing: None,
                cache_only: Some((offline, reason)),
            };
            if opts.is_offline() {
                return Ok(cache_only(true, "offline".into()));
            }
            let mut builder = ApiBuilder::from_cache(cache.clone()).with_progress(opts.progress);
            if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
                builder = builder.with_endpoint(endpoint);
            }
            let api = builder
                .build()
                .map_err(|e| Error::Hub(format!("cannot start the hub client: {e}")))?
                .repo(repo.clone());
            match api.info() {
                Ok(info) => Ok(Self {
                    listing: Some(info.siblings.into_iter().map(|s| s.rfilename).collect()),
                    api: Some(api),
                    repo,
                    cache,
                    cache_only: None,
                }),
                Err(e) => Ok(cache_only(false, format!("cannot list it on the hub ({e})"))),
            }
        }

        fn name(&self) -> String {
            format!("{}@{}", self.repo.url(), self.repo.revision())
        }

        /// Whether the repo has the file (online: in its listing; else: in the cache).
        fn has(&self, file: &str) -> bool {
            match &self.listing {
                Some(files) => files.iter().any(|f| f == file),
                None => self.cache.repo(self.repo.clone()).get(file).is_some(),
            }
        }

        /// The error for `file` (a name, or alternatives) absent from the repo or, cache only, the cache.
        fn missing(&self, file: &str) -> Error {
            match &self.cache_only {
                None => Error::Hub(format!("{} has no {file}", self.name())),
                Some((offline, reason)) => Error::NotCached {
                    repo: self.name(),
                    file: file.to_string(),
                    cache: self.cache.path().clone(),
                    offline: *offline,
                    reason: reason.clone(),
                },
            }
        }

        fn get(&self, file: &str) -> Result<PathBuf> {
            match &self.api {
                Some(api) => api
                    .get(file)
                    .map_err(|e| Error::Hub(format!("cannot download {file} from {}: {e}", self.name()))),
                None => self.cache.repo(self.repo.clone()).get(file).ok_or_else(|| self.missing(file)),
            }
        }
    }

    /// Whether a `config.json` describes an encoder this crate runs: ModernBERT, or LLMLingua-2's BERT
    /// and XLM-RoBERTa (a Kompress weights repo may ship its own, unrelated config instead).
    fn is_encoder_config(path: &std::path::Path) -> bool {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .is_some_and(|v| {
                v.get("model_type")
                    .and_then(|t| t.as_str())
                    .and_then(crate::encoders::bert::Family::from_model_type)
                    .is_some()
            })
    }

    pub fn resolve(repo_id: &str, opts: &HubOptions) -> Result<ModelFiles> {
        let revision = opts.revision.as_deref().unwrap_or("main");
        let source = Source::open(repo_id, revision, opts)?;
        let weights = match WEIGHT_FILES.iter().find(|f| source.has(f)) {
            Some(file) => source.get(file)?,
            None => return Err(source.missing(&super::weight_files_named())),
        };
        let mut base = None;
        let mut from_repo_or_base =
            |file: &str, usable: &dyn Fn(&std::path::Path) -> bool| -> Result<PathBuf> {
                if source.has(file) {
                    let path = source.get(file)?;
                    if usable(&path) {
                        return Ok(path);
                    }
                }
                if base.is_none() {
                    base = Some(Source::open(BASE_REPO, BASE_REVISION, opts)?);
                }
                base.as_ref().expect("just set").get(file)
            };
        let config = from_repo_or_base("config.json", &is_encoder_config)?;
        let tokenizer = from_repo_or_base("tokenizer.json", &|_| true)?;
        Ok(ModelFiles { config, tokenizer, weights })
    }
}

impl ModelFiles {
    /// Fetches (or, offline, finds in the cache) a Hugging Face repo's files.
    #[cfg(feature = "hub")]
    pub fn from_hub(repo_id: &str, opts: &HubOptions) -> Result<Self> {
        fetch::resolve(repo_id, opts)
    }

    /// Without the `hub` feature only local directories can be used.
    #[cfg(not(feature = "hub"))]
    pub fn from_hub(repo_id: &str, _opts: &HubOptions) -> Result<Self> {
        Err(Error::Hub(format!(
            "\"{repo_id}\" is not a local directory, and this build has no hub support (enable the `hub` feature)"
        )))
    }

    /// A local directory if `model` names one, else a Hugging Face repo id. A missing path that cannot
    /// be a repo id (`/abs`, `./rel`, `a/b/c`, ...) is a missing directory, not a hub lookup.
    pub fn locate(model: &str, opts: &HubOptions) -> Result<Self> {
        let path = Path::new(model);
        if path.exists() || !could_be_repo_id(model) {
            return Self::from_dir(path);
        }
        Self::from_hub(model, opts)
    }
}

/// Whether `s` has the form of a Hugging Face repo id: `name` or `owner/name`, each part of ASCII
/// letters, digits, `-`, `_` and `.`, not starting with `.` or `-`, at most 96 characters.
fn could_be_repo_id(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '-'])
            && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    let parts: Vec<&str> = s.split('/').collect();
    s.len() <= 96 && parts.len() <= 2 && parts.iter().all(|p| part(p))
}
