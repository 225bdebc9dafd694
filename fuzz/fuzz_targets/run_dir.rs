//! Any bytes as a checkpoint's `trainer.json` and optimizer state (split at the first NUL)
//! resume a run or give an error: never a panic. The checkpoint's weights are a real one,
//! written once by a tiny trainer.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ember_core::{DType, Device};
use ember_nn::{Init, VarBuilder, VarStore};
use ember_optim::{AdamW, AdamWConfig, Schedule};
use ember_train::{TrainConfig, Trainer};
use libfuzzer_sys::fuzz_target;

fn root() -> PathBuf {
    std::env::temp_dir().join(format!("ember-fuzz-run-dir-{}", std::process::id()))
}

fn store() -> VarStore {
    let store = VarStore::with_seed(Device::Cpu, DType::F32, 0);
    VarBuilder::new(&store)
        .get("w", &[4, 4], Init::Const(0.5))
        .expect("a 4x4 parameter");
    store
}

fn trainer<'a>(store: &'a VarStore, out: &Path) -> Trainer<'a> {
    let opt = AdamW::new(store.trainable_parameters(), AdamWConfig::default());
    let cfg = TrainConfig {
        out_dir: out.to_path_buf(),
        progress: false,
        ..TrainConfig::default()
    };
    Trainer::new(store, Box::new(opt), Schedule::Constant(1e-3), cfg)
}

/// A checkpoint written once: the files each input bends a copy of.
fn checkpoint() -> &'static PathBuf {
    static CKPT: OnceLock<PathBuf> = OnceLock::new();
    CKPT.get_or_init(|| {
        let store = store();
        let t = trainer(&store, &root().join("base"));
        t.save_checkpoint().expect("a checkpoint of the tiny run")
    })
}

fuzz_target!(|data: &[u8]| {
    let base = checkpoint();
    let (state, optimizer) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let work = root().join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    for entry in std::fs::read_dir(base).unwrap().flatten() {
        if entry.path().is_file() {
            std::fs::copy(entry.path(), work.join(entry.file_name())).unwrap();
        }
    }
    std::fs::write(work.join("trainer.json"), state).unwrap();
    if let Some(bytes) = optimizer
        && let Some(json) = std::fs::read_dir(&work)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "json") && !p.ends_with("trainer.json"))
    {
        std::fs::write(json, bytes).unwrap();
    }
    let store = store();
    let mut t = trainer(&store, &root().join("resumed"));
    let _ = t.resume(&work);
});
