//! Sizes that come from outside never abort the process: tensor creation with an element count
//! whose bytes overflow, or exceed the device's memory, is an `Error::TooLarge` (or a shape
//! error for counts past the address space), found before anything is allocated. The peak
//! resident memory of this test stays small, so none of them allocated.

use ember_core::{DType, Device, Error, Generator, Tensor};
use ember_testing::hostile::peak_rss_mib;

fn too_large<T: std::fmt::Debug>(what: &str, r: ember_core::Result<T>) -> String {
    match r {
        Err(e @ Error::TooLarge { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("bytes") || msg.contains("overflow"),
                "{what}: {msg}"
            );
            msg
        }
        Err(e @ Error::Shape { .. }) => e.to_string(),
        other => panic!("{what}: expected TooLarge, got {other:?}"),
    }
}

#[test]
fn creation_past_memory_is_an_error_not_an_abort() {
    let d = Device::Cpu;
    let huge = [1usize << 20, 1 << 20, 1 << 10]; // 2^50 elements: 4 PiB of f32
    let overflow = [usize::MAX / 2, 3]; // the element count itself overflows
    let mut g = Generator::new(0);
    let cases: Vec<(&str, ember_core::Result<Tensor>)> = vec![
        ("zeros", Tensor::zeros(&huge, DType::F32, d)),
        ("ones", Tensor::ones(&huge, DType::BF16, d)),
        ("full", Tensor::full(&huge, 2.0, DType::I64, d)),
        ("zeros overflow", Tensor::zeros(&overflow, DType::F32, d)),
        ("rand", Tensor::rand(&huge, DType::F32, d)),
        ("randn", Tensor::randn(&huge, DType::F32, d)),
        (
            "randn_with",
            Tensor::randn_with(&mut g, &overflow, DType::F32, d),
        ),
        (
            "rand_with",
            Tensor::rand_with(&mut g, &[1 << 40], DType::F16, d),
        ),
        ("arange", Tensor::arange(0.0, 1e18, 1.0, DType::I64, d)),
        (
            "arange past usize",
            Tensor::arange(0.0, 1e300, 1.0, DType::F32, d),
        ),
        ("eye", Tensor::eye(1 << 32, DType::F32, d)),
        ("eye overflow", Tensor::eye(usize::MAX, DType::F32, d)),
        (
            "from_vec overflow",
            Tensor::from_vec(vec![1.0f32; 2], &[usize::MAX, 2], d),
        ),
        (
            "broadcast_to overflow",
            Tensor::ones(&[1], DType::F32, d).and_then(|t| t.broadcast_to(&overflow)),
        ),
        (
            "reshape overflow",
            Tensor::ones(&[4], DType::F32, d).and_then(|t| t.reshape(&[-1, isize::MAX, 4])),
        ),
    ];
    let n = cases.len();
    for (what, r) in cases {
        let msg = too_large(what, r);
        eprintln!("{what}: {msg}");
    }
    // A size that fits still works.
    assert_eq!(
        Tensor::zeros(&[3, 4], DType::F32, d).unwrap().dims(),
        &[3, 4]
    );
    if let Some(peak) = peak_rss_mib() {
        eprintln!("{n} oversized creations refused; peak RSS {peak:.0} MiB");
        assert!(
            peak < 1024.0,
            "peak RSS {peak:.0} MiB: something was allocated"
        );
    }
}

#[test]
fn the_error_says_how_many_bytes_and_what_the_device_has() {
    let e = Tensor::zeros(&[1 << 30, 1 << 20], DType::F32, Device::Cpu).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("zeros:"), "{msg}");
    assert!(msg.contains("[1073741824, 1048576]"), "{msg}");
    assert!(
        msg.contains("4.0 PiB") || msg.contains("4503599627370496"),
        "{msg}"
    );
}
