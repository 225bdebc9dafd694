//! One model shared by 8 threads generating at once gives each thread the tokens it gets
//! alone, greedy and sampled: SmolLM2 kept in its Q4_1 blocks, so the integer kernels' spinning
//! pool, rayon and the per-thread state (grad mode, autocast, the sampler) are all shared or
//! contended.

use ember_core::{DType, Device};
use ember_models::{GenerateOpts, Llama, Tokenizer, generate};
use ember_testing::asset;
use ember_weights::GgufFile;

const SMOLLM2: &str = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

#[test]
fn eight_threads_sharing_a_model_each_get_the_tokens_they_get_alone() {
    let Some(path) = asset(SMOLLM2) else { return };
    let g = GgufFile::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let model = Llama::from_gguf(&g, Device::Cpu, DType::F32).unwrap();
    let prompts: Vec<Vec<i64>> = (0..8)
        .map(|i| {
            tok.encode(&format!("Story number {i}: once upon a time"), false)
                .unwrap()
        })
        .collect();
    // Even threads greedy, odd ones sampling with their own seed.
    let opts = |i: usize| GenerateOpts {
        max_new_tokens: 24,
        temperature: if i.is_multiple_of(2) { 0.0 } else { 0.8 },
        top_k: 40,
        seed: i as u64,
        ..GenerateOpts::default()
    };
    let alone: Vec<Vec<i64>> = (0..8)
        .map(|i| generate(&model, &prompts[i], Device::Cpu, &opts(i), |_| {}).unwrap())
        .collect();
    let together: Vec<Vec<i64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (model, prompt, o) = (&model, &prompts[i], opts(i));
                s.spawn(move || generate(model, prompt, Device::Cpu, &o, |_| {}).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(a, t, "thread {i} got other tokens beside 7 others");
        assert!(a.len() > prompts[i].len(), "thread {i} generated nothing");
    }
}
