//! The sentence embedder: a local ONNX model run by fastembed on a thread of its own, which
//! takes every text waiting when it wakes and embeds them as one batch (a batch of 32 costs
//! about as much as a few single texts), so load makes each embedding cheaper, not slower.
//!
//! ONNX Runtime is loaded from a path at startup, never downloaded: `embedder.onnxruntime`,
//! else `ORT_DYLIB_PATH`, else `libonnxruntime.so` in the model directory (where
//! `policies/install-embedder.sh` links it). Everything is checked before the model loads, so
//! a missing file is an error naming it rather than a panic inside ONNX Runtime.

use super::SemanticError;
use crate::telemetry::Histogram;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Instant;
use tokio::sync::oneshot;

/// Texts embedded together at most.
const MAX_BATCH: usize = 32;
/// Longest text embedded, in bytes; the model reads at most 256 tokens anyway.
const MAX_TEXT_BYTES: usize = 4096;
/// Files the model directory must hold.
const MODEL_FILES: [&str; 5] = [
    "model.onnx",
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
];

type Reply = oneshot::Sender<Result<Vec<f32>, SemanticError>>;

/// A handle to the embedding thread. Dropping the last handle stops the thread.
#[derive(Debug)]
pub struct Embedder {
    jobs: mpsc::SyncSender<(String, Reply)>,
    pub dimensions: usize,
}

impl Embedder {
    /// Loads the model in `model_dir` with ONNX Runtime from `onnxruntime` (see the module
    /// docs for the fallbacks) and starts the embedding thread.
    pub fn load(
        model_dir: &Path,
        onnxruntime: Option<&Path>,
        latency: Arc<Histogram>,
    ) -> Result<Embedder, SemanticError> {
        let runtime = runtime_path(model_dir, onnxruntime)?;
        for file in MODEL_FILES {
            let path = model_dir.join(file);
            if !path.is_file() {
                return Err(SemanticError::Setup(format!(
                    "embedding model file {} is missing (run policies/install-embedder.sh, or \
                     point cache.embedder.model_dir at a directory holding {})",
                    path.display(),
                    MODEL_FILES.join(", ")
                )));
            }
        }
        // Loaded and version-checked here, so sessions fastembed creates use this library.
        let _environment = ort::init_from(&runtime).map_err(|e| {
            SemanticError::Setup(format!(
                "cannot load ONNX Runtime from {}: {e}",
                runtime.display()
            ))
        })?;
        let mut model = load_model(model_dir)?;
        let probe = model
            .embed(vec!["probe"], None)
            .map_err(|e| SemanticError::Setup(format!("the embedding model does not run: {e}")))?;
        let dimensions = probe.first().map_or(0, Vec::len);
        if dimensions == 0 {
            return Err(SemanticError::Setup(
                "the embedding model returned an empty vector".into(),
            ));
        }
        let (jobs, queue) = mpsc::sync_channel::<(String, Reply)>(4096);
        std::thread::Builder::new()
            .name("tollgate-embed".into())
            .spawn(move || run(model, queue, &latency))
            .map_err(|e| SemanticError::Setup(format!("cannot start the embedding thread: {e}")))?;
        Ok(Embedder { jobs, dimensions })
    }

    /// The unit-length embedding of `text`. A full queue is an error (the caller treats it as
    /// a miss) rather than a wait.
    pub async fn embed(&self, mut text: String) -> Result<Vec<f32>, SemanticError> {
        if text.len() > MAX_TEXT_BYTES {
            let mut cut = MAX_TEXT_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        let (reply, answer) = oneshot::channel();
        self.jobs.try_send((text, reply)).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => SemanticError::Busy,
            mpsc::TrySendError::Disconnected(_) => SemanticError::Stopped,
        })?;
        answer.await.map_err(|_| SemanticError::Stopped)?
    }
}

fn runtime_path(model_dir: &Path, configured: Option<&Path>) -> Result<PathBuf, SemanticError> {
    let (path, from) = match (configured, std::env::var_os("ORT_DYLIB_PATH")) {
        (Some(p), _) => (p.to_path_buf(), "cache.embedder.onnxruntime"),
        (None, Some(p)) => (PathBuf::from(p), "ORT_DYLIB_PATH"),
        (None, None) => (model_dir.join("libonnxruntime.so"), "the model directory"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(SemanticError::Setup(format!(
            "ONNX Runtime not found at {} (from {from}); run policies/install-embedder.sh or \
             set cache.embedder.onnxruntime to libonnxruntime.so",
            path.display()
        )))
    }
}

/// The model files in `dir` (as `policies/install-embedder.sh` lays them out) as a fastembed
/// user-defined model with mean pooling. Public for the examples that load a model directly.
pub fn user_defined_model(
    dir: &Path,
) -> Result<fastembed::UserDefinedEmbeddingModel, SemanticError> {
    use fastembed::{Pooling, TokenizerFiles, UserDefinedEmbeddingModel};
    let read = |file: &str| {
        std::fs::read(dir.join(file)).map_err(|e| {
            SemanticError::Setup(format!("cannot read {}: {e}", dir.join(file).display()))
        })
    };
    let tokenizer = TokenizerFiles {
        tokenizer_file: read("tokenizer.json")?,
        config_file: read("config.json")?,
        special_tokens_map_file: read("special_tokens_map.json")?,
        tokenizer_config_file: read("tokenizer_config.json")?,
    };
    Ok(UserDefinedEmbeddingModel::new(read("model.onnx")?, tokenizer).with_pooling(Pooling::Mean))
}

fn load_model(dir: &Path) -> Result<fastembed::TextEmbedding, SemanticError> {
    use fastembed::{InitOptionsUserDefined, TextEmbedding};
    let model = user_defined_model(dir)?;
    // ONNX Runtime reports a library it cannot load by panicking; keep that from the caller.
    std::panic::catch_unwind(|| {
        TextEmbedding::try_new_from_user_defined(model, InitOptionsUserDefined::default())
    })
    .map_err(|_| SemanticError::Setup("ONNX Runtime could not be loaded".into()))?
    .map_err(|e| SemanticError::Setup(format!("cannot load the embedding model: {e}")))
}

/// The embedding thread: block for one text, take whatever else is queued (up to a batch),
/// embed them together, answer each.
fn run(
    mut model: fastembed::TextEmbedding,
    queue: mpsc::Receiver<(String, Reply)>,
    latency: &Histogram,
) {
    let mut texts = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Ok((text, reply)) = queue.recv() {
        texts.push(text);
        replies.push(reply);
        while texts.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok((text, reply)) => {
                    texts.push(text);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let result = model.embed(std::mem::take(&mut texts), None);
        latency.record(started.elapsed());
        match result {
            Ok(vectors) => {
                for (reply, mut v) in replies.drain(..).zip(vectors) {
                    super::normalise(&mut v);
                    let _ = reply.send(Ok(v));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(SemanticError::Embedding(message.clone())));
                }
            }
        }
        texts = Vec::with_capacity(MAX_BATCH);
    }
}
