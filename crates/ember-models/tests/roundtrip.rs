//! save_pretrained → from_pretrained gives identical logits for every model. With
//! `EMBER_ROUNDTRIP_OUT=dir`, the saved directories are kept there for
//! `scripts/check_roundtrip.py`, which confirms transformers reloads them with identical logits.

use std::path::PathBuf;

use ember_core::{DType, Device, Tensor};
use ember_models::{Bert, Gpt2, Llama};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models")
}

fn out(name: &str) -> PathBuf {
    match std::env::var("EMBER_ROUNDTRIP_OUT") {
        Ok(d) => PathBuf::from(d).join(name),
        Err(_) => {
            std::env::temp_dir().join(format!("ember-roundtrip-{}-{name}", std::process::id()))
        }
    }
}

fn same(a: &Tensor, b: &Tensor) {
    assert_eq!(a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
}

#[test]
fn saved_models_reload_with_identical_outputs() {
    let ids = Tensor::from_vec(vec![3i64, 1, 4, 1, 5, 9, 2, 6], &[2, 4], Device::Cpu).unwrap();
    let (cpu, f32_) = (Device::Cpu, DType::F32);

    let llama = Llama::from_pretrained(fixtures().join("tiny-llama"), cpu, f32_).unwrap();
    llama.save_pretrained(out("tiny-llama")).unwrap();
    let back = Llama::from_pretrained(out("tiny-llama"), cpu, f32_).unwrap();
    same(&llama.forward(&ids).unwrap(), &back.forward(&ids).unwrap());

    let gpt2 = Gpt2::from_pretrained(fixtures().join("tiny-gpt2"), cpu, f32_).unwrap();
    gpt2.save_pretrained(out("tiny-gpt2")).unwrap();
    let back = Gpt2::from_pretrained(out("tiny-gpt2"), cpu, f32_).unwrap();
    same(&gpt2.forward(&ids).unwrap(), &back.forward(&ids).unwrap());

    let bert = Bert::from_pretrained(fixtures().join("tiny-bert"), cpu, f32_).unwrap();
    bert.save_pretrained(out("tiny-bert")).unwrap();
    let back = Bert::from_pretrained(out("tiny-bert"), cpu, f32_).unwrap();
    same(
        &bert.forward(&ids, None, None).unwrap().0,
        &back.forward(&ids, None, None).unwrap().0,
    );
}
