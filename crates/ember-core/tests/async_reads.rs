//! Asynchronous device opening and reads (`Device::init_async`, `Tensor::to_vec_async`), the
//! only ones WebGPU allows in a browser: here they must give what the synchronous ones give.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use ember_core::{DType, Device, Result, Tensor};
use ember_testing::on_every_device;

/// Drives a future whose value is ready at once (every native device's reads are); a future
/// still pending after many polls fails the test.
fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
    panic!("a native device's read did not complete");
}

fn reads(device: Device) -> Result<()> {
    let name = ready(device.init_async())?;
    assert!(!name.is_empty());
    assert!(device.reads_synchronously());

    let x = Tensor::from_vec(vec![1.5f32, -2.0, 0.0, 4.25], &[2, 2], device)?;
    assert_eq!(ready(x.to_vec_async::<f32>())?, x.to_vec::<f32>()?);
    // Converted on the host: f32 to i64 truncates toward zero, to bool is x != 0.
    assert_eq!(ready(x.to_vec_async::<i64>())?, vec![1, -2, 0, 4]);
    assert_eq!(
        ready(x.to_vec_async::<bool>())?,
        vec![true, true, false, true]
    );

    let ids = Tensor::from_vec(vec![3i64, 0, -7], &[3], device)?;
    assert_eq!(ready(ids.to_vec_async::<i64>())?, vec![3, 0, -7]);
    assert_eq!(ready(ids.to_vec_async::<f32>())?, vec![3.0, 0.0, -7.0]);
    let mask = ids.gt_scalar(0.0)?;
    assert_eq!(
        ready(mask.to_vec_async::<bool>())?,
        vec![true, false, false]
    );
    assert_eq!(ready(mask.to_vec_async::<i64>())?, vec![1, 0, 0]);

    // A model-sized read: an embedding lookup, as MiniLM's first op.
    let table = Tensor::randn(&[50, 8], DType::F32, device)?;
    let rows = table.embedding(&Tensor::from_vec(vec![4i64, 49, 0], &[3], device)?)?;
    assert_eq!(ready(rows.to_vec_async::<f32>())?, rows.to_vec::<f32>()?);
    Ok(())
}

fn reads_on(device: Device) {
    reads(device).unwrap()
}

on_every_device!(async_reads, reads_on);
