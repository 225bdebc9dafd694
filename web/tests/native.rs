//! The page's Rust code run natively: speeches split as printed, training options checked,
//! training steps reproducible from the seed, MiniLM search ranking, and the chat's streamed
//! pieces adding up to its reply (the real-asset tests skip loudly without the assets and
//! fail under EMBER_REQUIRE_ASSETS=1).

use ember::Device;
use ember_testing::asset;
use ember_web::chat::ChatModel;
use ember_web::search::{MAX_TOKENS, SearchIndex, Speech, split_speeches};
use ember_web::train::{TrainOptions, TrainSession};

const PLAY: &str = "HAMLET\n\nACT I.\n\nScene I. Elsinore.\n\n[Enter Bernardo.]\n\n\
Ber.\nWho's there?\n\nFran.\nNay, answer me: stand, and unfold yourself.\n[Exit.]\n\n\
Lord Polonius.\nNeither a borrower nor a lender be;\nFor loan oft loses both itself and friend.\n\n\
The king doth wake to-night and takes his rouse.\n";

#[test]
fn speeches_are_split_at_their_headings() {
    let all = split_speeches(PLAY, 1);
    let want = [
        ("Ber.", "Who's there?"),
        ("Fran.", "Nay, answer me: stand, and unfold yourself."),
        (
            "Lord Polonius.",
            "Neither a borrower nor a lender be; For loan oft loses both itself and friend.",
        ),
    ];
    let want: Vec<Speech> = want
        .iter()
        .map(|(s, t)| Speech {
            speaker: s.to_string(),
            text: t.to_string(),
        })
        .collect();
    assert_eq!(all, want);
    assert_eq!(
        split_speeches(PLAY, 8).len(),
        1,
        "only Polonius has 8 words"
    );
    assert!(split_speeches("", 1).is_empty());
}

fn text() -> String {
    "First Citizen:\nBefore we proceed any further, hear me speak.\n".repeat(40)
}

fn tiny(steps: u64) -> TrainOptions {
    TrainOptions {
        steps,
        batch_size: 4,
        block: 16,
        n_layer: 1,
        n_head: 2,
        n_embd: 16,
        warmup: 0,
        lr: 1e-2,
        ..Default::default()
    }
}

#[test]
fn training_steps_are_reproducible_and_bounded() {
    let run = |seed: u64| {
        let mut s = TrainSession::new(&text(), TrainOptions { seed, ..tiny(5) }).unwrap();
        let mut losses = Vec::new();
        while !s.done() {
            let r = s.step().unwrap();
            assert_eq!(r.step as usize, losses.len() + 1);
            losses.push(r.loss);
        }
        assert!(s.step().is_err(), "a step past the end is an error");
        assert_eq!(s.steps_done(), 5);
        (losses, s.sample(20, 0.8).unwrap())
    };
    let (a, sample) = run(7);
    assert_eq!(
        run(7).0,
        a,
        "the same seed gives the same losses, bit for bit"
    );
    assert_ne!(run(8).0, a, "another seed gives other losses");
    assert!(a.iter().all(|l| l.is_finite()));
    assert!(a[4] < a[0], "the loss falls: {a:?}");
    assert_eq!(sample.chars().count(), 20);

    for bad in [
        TrainOptions {
            n_head: 3,
            ..tiny(5)
        },
        TrainOptions {
            batch_size: 0,
            ..tiny(5)
        },
        TrainOptions {
            n_embd: 1 << 20,
            ..tiny(5)
        },
        TrainOptions {
            lr: f64::NAN,
            ..tiny(5)
        },
        TrainOptions {
            steps: 0,
            ..tiny(5)
        },
    ] {
        let err = TrainSession::new(&text(), bad.clone()).err();
        assert!(err.is_some(), "{bad:?} must be refused");
    }
    let s = TrainSession::new(&text(), tiny(5)).unwrap();
    assert!(s.sample(1_000_000, 0.8).is_err());
    assert!(s.sample(10, f64::NAN).is_err());
    assert!(serde_json::from_str::<TrainOptions>(r#"{"stpes": 5}"#).is_err());
}

fn minilm() -> Option<SearchIndex> {
    let dir = asset("minilm")?;
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    Some(
        SearchIndex::new(
            &read("config.json"),
            read("model.safetensors"),
            &read("tokenizer.json"),
            Device::Cpu,
        )
        .unwrap(),
    )
}

#[test]
fn search_ranks_by_meaning_and_truncates_long_passages() {
    let Some(mut index) = minilm() else { return };
    let passages = [
        "A man is eating food.",
        "The girl is carrying a baby.",
        "A man is riding a horse.",
        "A woman is playing violin.",
    ];
    index.add(&passages).unwrap();
    assert_eq!(index.len(), 4);
    let hits = index
        .rank("Someone plays a musical instrument.", 2)
        .unwrap();
    assert_eq!(hits[0].index, 3, "{hits:?}");
    assert!(hits[0].score > hits[1].score);
    // A passage embedded with others (padded) equals it embedded alone.
    let alone = index.embed(&passages[..1]).unwrap();
    let together = index.embed(&passages).unwrap();
    let diff = alone
        .iter()
        .zip(&together[..alone.len()])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "padding changed the embedding by {diff}");
    // Past MAX_TOKENS words the passage is cut, not refused (MiniLM has 512 positions).
    let long = "word ".repeat(4 * MAX_TOKENS);
    let e = index.embed(&[long.as_str()]).unwrap();
    let norm: f32 = e.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    // The async path (WebGPU's in the browser) gives the same values; on the CPU its read is
    // ready at the first poll.
    {
        let mut future = std::pin::pin!(index.embed_async(&passages));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let std::task::Poll::Ready(async_rows) = future.as_mut().poll(&mut cx) else {
            panic!("a CPU read was not ready at once");
        };
        assert_eq!(async_rows.unwrap(), together);
    }
    // Embeddings kept by hand must be whole rows.
    assert!(index.add_embeddings(vec![0.0; index.dim() + 1]).is_err());
    index.add_embeddings(together).unwrap();
    assert_eq!(index.len(), 8);
}

#[test]
fn the_chat_streams_its_reply() {
    let Some(path) = asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let chat = ChatModel::from_gguf_bytes(std::fs::read(path).unwrap()).unwrap();
    let mut conversation = chat.session(ember_web::chat::DEFAULT_SYSTEM).unwrap();
    let mut pieces = String::new();
    let reply = chat
        .send(
            &mut conversation,
            "What is the capital of France?",
            24,
            |p| {
                pieces.push_str(p);
                Ok(())
            },
        )
        .unwrap();
    assert!(reply.contains("Paris"), "{reply:?}");
    assert_eq!(pieces.trim(), reply.trim());
    assert!(chat.send(&mut conversation, "hi", 0, |_| Ok(())).is_err());
    assert!(ChatModel::from_gguf_bytes(b"GGUF junk".to_vec()).is_err());
}
