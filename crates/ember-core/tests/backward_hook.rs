//! `backward_with_hook`: every leaf is reported once, with the gradient `backward` gives, as
//! soon as no later rule adds to it (a layer near the loss before one near the input).

use ember_core::{Backward, Device, Tensor};

fn leaf(values: &[f32], dims: &[usize]) -> Tensor {
    Tensor::from_slice(values, dims, Device::Cpu)
        .unwrap()
        .requires_grad(true)
        .unwrap()
}

#[test]
fn leaves_are_reported_once_complete_with_backwards_gradients() {
    let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0], &[1, 3], Device::Cpu).unwrap();
    let w1 = leaf(&[0.1, 0.2, 0.3, -0.4, 0.5, 0.6], &[3, 2]); // (3, 2)
    let w2 = leaf(&[0.7, -0.8], &[2, 1]); // (2, 1)
    let b = leaf(&[0.25], &[1]);
    let loss = |()| {
        // w1 is used twice: its gradient is complete only after both uses.
        let h = x.matmul(&w1).unwrap().tanh().unwrap(); // (1, 2)
        let extra = w1.sum(&[], false).unwrap();
        h.matmul(&w2)
            .unwrap()
            .add(&b)
            .unwrap()
            .sum(&[], false)
            .unwrap()
            .add(&extra)
            .unwrap()
    };
    let plain = loss(()).backward().unwrap();
    let mut seen: Vec<(ember_core::TensorId, Vec<f32>)> = Vec::new();
    let hooked = loss(())
        .backward_with_hook(&mut |leaf, g| {
            seen.push((leaf.id(), g.to_vec::<f32>()?));
            Ok(())
        })
        .unwrap();
    let order: Vec<_> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(order.len(), 3, "each leaf once");
    for t in [&w1, &w2, &b] {
        let (_, g) = seen.iter().find(|(id, _)| *id == t.id()).expect("reported");
        assert_eq!(g, &plain.get(t).unwrap().to_vec::<f32>().unwrap());
        assert_eq!(g, &hooked.get(t).unwrap().to_vec::<f32>().unwrap());
    }
    let at = |t: &Tensor| order.iter().position(|id| *id == t.id()).unwrap();
    assert!(
        at(&w2) < at(&w1),
        "the layer nearer the loss completes first"
    );
    // An error from the hook ends the backward.
    let err = loss(())
        .backward_with_hook(&mut |_, _| Err(ember_core::Error::data("hook", "stop")))
        .unwrap_err();
    assert!(err.to_string().contains("stop"));
}
