//! Behaviour of the first-week ops that PyTorch fixtures cannot pin: sampling (Ember's own
//! random streams), in-place updates' refusals, and the errors of indexing, einsum, conv,
//! pooling and sorting.

use ember_core::{ConvOpts, DType, Device, ELLIPSIS, Generator, PoolOpts, Tensor};

const CPU: Device = Device::Cpu;

#[test]
fn randint_covers_its_range_uniformly() {
    let t = Tensor::randint_with(&mut Generator::new(3), -3, 4, &[70_000], CPU).unwrap();
    let v = t.to_vec::<i64>().unwrap();
    for k in -3..4 {
        let n = v.iter().filter(|&&x| x == k).count() as f64;
        // 10_000 expected per value; 5 standard deviations is ±470.
        assert!((n - 10_000.0).abs() < 470.0, "value {k} drawn {n} times");
    }
    assert!(Tensor::randint(2, 2, &[3], CPU).is_err());
}

#[test]
fn randperm_is_a_seeded_permutation() {
    let a = Tensor::randperm_with(&mut Generator::new(9), 50, CPU).unwrap();
    let b = Tensor::randperm_with(&mut Generator::new(9), 50, CPU).unwrap();
    let mut v = a.to_vec::<i64>().unwrap();
    assert_eq!(v, b.to_vec::<i64>().unwrap());
    assert_ne!(
        v,
        (0..50).collect::<Vec<i64>>(),
        "a shuffle of 50 left everything in place"
    );
    v.sort_unstable();
    assert_eq!(v, (0..50).collect::<Vec<i64>>());
}

#[test]
fn multinomial_follows_the_weights() {
    let p = Tensor::from_vec(vec![1.0f32, 0.0, 3.0], &[3], CPU).unwrap();
    let s = p
        .multinomial_with(&mut Generator::new(1), 40_000, true)
        .unwrap();
    let v = s.to_vec::<i64>().unwrap();
    let twos = v.iter().filter(|&&x| x == 2).count() as f64 / 40_000.0;
    assert!(
        v.iter().all(|&x| x != 1),
        "a zero-weight category was drawn"
    );
    assert!(
        (twos - 0.75).abs() < 0.011,
        "category 2 drawn with frequency {twos}"
    );
    // Without replacement: distinct per row, and no more than the non-zero categories.
    let rows = Tensor::from_vec(
        vec![1.0f32, 2.0, 3.0, 4.0, 0.5, 0.5, 0.5, 0.5],
        &[2, 4],
        CPU,
    )
    .unwrap();
    let d = rows.multinomial(4, false).unwrap().to_vec::<i64>().unwrap();
    for row in d.chunks(4) {
        let mut r = row.to_vec();
        r.sort_unstable();
        assert_eq!(r, vec![0, 1, 2, 3]);
    }
    assert!(p.multinomial(3, false).is_err());
    let bad = Tensor::from_vec(vec![1.0f32, -1.0], &[2], CPU).unwrap();
    assert!(bad.multinomial(1, true).is_err());
}

#[test]
fn in_place_updates_refuse_tracked_tensors_and_narrowing() {
    let w = Tensor::ones(&[3], DType::F32, CPU)
        .unwrap()
        .requires_grad(true)
        .unwrap();
    let mut tracked = w.mul_scalar(2.0).unwrap();
    let e = tracked.add_(1.0).unwrap_err().to_string();
    assert!(e.contains("autograd"), "{e}");
    let mut plain = Tensor::zeros(&[3], DType::F32, CPU).unwrap();
    assert!(
        plain.add_(&w).is_err(),
        "a tracked operand was accepted in place"
    );
    let mut ints = Tensor::zeros(&[3], DType::I64, CPU).unwrap();
    let e = ints.add_(0.5).unwrap_err().to_string();
    assert!(e.contains("cannot be stored in place"), "{e}");
    ints.add_(2i64).unwrap();
    assert_eq!(ints.to_vec::<i64>().unwrap(), vec![2, 2, 2]);
    let mut small = Tensor::zeros(&[3], DType::F32, CPU).unwrap();
    let wide = Tensor::ones(&[2, 3], DType::F32, CPU).unwrap();
    assert!(
        small.add_(&wide).is_err(),
        "broadcasting grew a tensor in place"
    );
    // The handle moves to the new value; a clone keeps the old one.
    let mut a = Tensor::zeros(&[2], DType::F32, CPU).unwrap();
    let before = a.clone();
    a.fill_(3.0).unwrap();
    assert_eq!(before.to_vec::<f32>().unwrap(), vec![0.0, 0.0]);
    assert_eq!(a.to_vec::<f32>().unwrap(), vec![3.0, 3.0]);
}

#[test]
fn indexing_errors_name_the_problem() {
    let t = Tensor::zeros(&[2, 3], DType::F32, CPU).unwrap();
    let e = t.i((0, 3)).unwrap_err().to_string();
    assert!(e.contains("index 3 is out of range"), "{e}");
    assert!(t.i((0, 0, 0)).is_err());
    assert!(t.i((ELLIPSIS, ELLIPSIS)).is_err());
    assert_eq!(t.i(-1).unwrap().dims(), &[3]);
    assert_eq!(t.i((.., ..=-1)).unwrap().dims(), &[2, 3]);
    assert_eq!(t.i((.., 1..=1)).unwrap().dims(), &[2, 1]);
}

#[test]
fn einsum_conv_pool_and_sort_errors() {
    let a = Tensor::zeros(&[2, 3], DType::F32, CPU).unwrap();
    let b = Tensor::zeros(&[4, 5], DType::F32, CPU).unwrap();
    for (eq, ops) in [
        ("ij,jk->ik", vec![&a, &b]),
        ("ij->ik", vec![&a]),
        ("ij,jk", vec![&a]),
        ("i1->i", vec![&a]),
        ("ijk->i", vec![&a]),
    ] {
        assert!(Tensor::einsum(eq, &ops).is_err(), "{eq} was accepted");
    }
    let x = Tensor::zeros(&[1, 4, 5, 5], DType::F32, CPU).unwrap();
    let w = Tensor::zeros(&[2, 3, 3, 3], DType::F32, CPU).unwrap();
    let e = x
        .conv2d(&w, None, ConvOpts::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("groups"), "{e}");
    let w64 = Tensor::zeros(&[2, 4, 3, 3], DType::F64, CPU).unwrap();
    assert!(x.conv2d(&w64, None, ConvOpts::default()).is_err());
    let huge = Tensor::zeros(&[2, 4, 9, 9], DType::F32, CPU).unwrap();
    assert!(x.conv2d(&huge, None, ConvOpts::default()).is_err());
    assert!(x.max_pool2d(PoolOpts::new([2, 2]).padding([2, 0])).is_err());
    assert!(a.topk(4, 1, true).is_err());
    assert!(a.topk(0, 1, true).is_err());
}
