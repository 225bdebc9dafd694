//! Generation options and prompts from outside are checked: each bad value is an `Err` naming
//! it, temperature 0 is greedy, a prompt past the context is an error, generation stops when
//! the context is full, and a model with NaN weights is an error rather than garbage.

use std::path::PathBuf;
use std::time::Duration;

use ember_core::{DType, Device, Tensor};
use ember_models::{CausalLm, GenerateOpts, Gpt2, generate};
use ember_testing::hostile::Hostile;

fn gpt2() -> Gpt2 {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models/tiny-gpt2");
    Gpt2::from_pretrained(dir, Device::Cpu, DType::F32).unwrap() // 32 positions, vocab 50
}

#[test]
fn bad_options_and_prompts_are_errors() {
    let model = gpt2();
    let cpu = Device::Cpu;
    let prompt = [1i64, 2, 3];
    let run = |o: GenerateOpts, p: &[i64]| generate(&model, p, cpu, &o, |_| {});
    let with = |f: &dyn Fn(&mut GenerateOpts)| {
        let mut o = GenerateOpts {
            max_new_tokens: 4,
            ..Default::default()
        };
        f(&mut o);
        o
    };
    let mut h = Hostile::new("generation options", Duration::from_secs(1), 1024.0);
    h.ok("defaults", || run(with(&|_| {}), &prompt));
    for (what, set) in [
        (
            "temperature NaN",
            &(|o: &mut GenerateOpts| o.temperature = f64::NAN) as &dyn Fn(&mut GenerateOpts),
        ),
        ("temperature -1", &|o| o.temperature = -1.0),
        ("temperature inf", &|o| o.temperature = f64::INFINITY),
        ("top_p 0", &|o| o.top_p = 0.0),
        ("top_p 1.5", &|o| o.top_p = 1.5),
        ("top_p NaN", &|o| o.top_p = f64::NAN),
        ("repetition penalty 0", &|o| o.repetition_penalty = 0.0),
        ("repetition penalty -2", &|o| o.repetition_penalty = -2.0),
        ("repetition penalty NaN", &|o| {
            o.repetition_penalty = f64::NAN
        }),
    ] {
        h.err(what, || run(with(set), &prompt));
    }
    h.ok("top_k larger than the vocabulary", || {
        run(
            with(&|o| {
                o.temperature = 0.7;
                o.top_k = 1000;
            }),
            &prompt,
        )
    });
    h.err("an empty prompt", || run(with(&|_| {}), &[]));
    h.err("a prompt past the context", || run(with(&|_| {}), &[1; 33]));
    h.err("a token past the vocabulary", || {
        run(with(&|_| {}), &[1, 50])
    });
    h.err("a negative token", || run(with(&|_| {}), &[1, -1]));
    h.ok("max_new_tokens usize::MAX (stops at the context)", || {
        run(with(&|o| o.max_new_tokens = usize::MAX), &prompt)
    });
    h.finish();
}

#[test]
fn temperature_zero_is_greedy_and_generation_stops_at_the_context() {
    let model = gpt2();
    let prompt = [4i64, 8, 15];
    let opts = GenerateOpts {
        max_new_tokens: 5,
        temperature: 0.0,
        ..Default::default()
    };
    let got = generate(&model, &prompt, Device::Cpu, &opts, |_| {}).unwrap();
    // Greedy by hand: argmax of the last position, appended, five times.
    let mut ids = prompt.to_vec();
    for _ in 0..5 {
        let x = Tensor::from_vec(ids.clone(), &[1, ids.len()], Device::Cpu).unwrap();
        let logits = model
            .forward(&x)
            .unwrap()
            .narrow(1, ids.len() - 1, 1)
            .unwrap();
        ids.push(
            logits
                .argmax(-1, false)
                .unwrap()
                .reshape(&[-1])
                .unwrap()
                .to_vec::<i64>()
                .unwrap()[0],
        );
    }
    assert_eq!(got, ids[3..]);

    let all = GenerateOpts {
        max_new_tokens: 1000,
        ..opts
    };
    let got = generate(&model, &prompt, Device::Cpu, &all, |_| {}).unwrap();
    assert_eq!(
        got.len(),
        32 - prompt.len() + 1,
        "the context of 32 positions is full"
    );
    assert_eq!(model.max_positions(), 32);
}

#[test]
fn nan_weights_are_an_error_not_garbage() {
    let model = gpt2();
    let w = model.store.get("wte.weight").unwrap();
    w.set(&w.tensor().mul_scalar(f64::NAN).unwrap()).unwrap();
    let err = generate(
        &model,
        &[1, 2],
        Device::Cpu,
        &GenerateOpts::default(),
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("non-finite logit"), "{err}");
}
