//! Host I/O: uploads, downloads (blocking and asynchronous), and how each device stores
//! Ember's integers.

use std::any::Any;

use burn_backend::ops::{BoolTensorOps, FloatTensorOps, IntTensorOps};
use burn_backend::{Backend, DType as BurnDType, DTypeUsage};
use burn_backend::{Shape, TensorData, TensorMetadata, try_read_sync};
use burn_dispatch::{Dispatch, DispatchDevice, DispatchTensor};
use burn_std::IntDType;

use super::{B, Kind, Prim, cast};
use crate::{DType, Device, Element, Error, Result};

/// How Ember's I64 is stored on a device: as i64 where the device computes with it, else as
/// i32 (WGSL, so WebGPU in a browser, has no 64-bit integers): values must then fit in i32,
/// which uploads check.
pub(super) fn int_store(device: &DispatchDevice) -> IntDType {
    if matches!(device, DispatchDevice::Flex(_))
        || Dispatch::dtype_usage(device, BurnDType::I64).contains(DTypeUsage::Arithmetic)
    {
        IntDType::I64
    } else {
        IntDType::I32
    }
}

pub(super) fn int_store_of(p: &DispatchTensor) -> IntDType {
    int_store(&p.device())
}

/// Integer host data as the device stores it (see [`int_store`]).
fn int_data(data: TensorData, device: &DispatchDevice, op: &'static str) -> Result<TensorData> {
    let data = data.convert_dtype(BurnDType::I64);
    if int_store(device) == IntDType::I64 {
        return Ok(data);
    }
    let values = data.as_slice::<i64>().map_err(|e| Error::Backend {
        op,
        msg: format!("{e:?}"),
    })?;
    if let Some(v) = values.iter().find(|v| i32::try_from(**v).is_err()) {
        return Err(Error::data(
            op,
            format!("{v} does not fit the 32-bit integers this device stores I64 as (WGSL)"),
        ));
    }
    Ok(data.convert_dtype(BurnDType::I32))
}

/// Uploads host values with a shape (product of `shape` == `values.len()`, checked by caller).
fn from_vec<E: Element + burn_backend::Element>(
    values: Vec<E>,
    shape: &[usize],
    device: Device,
) -> Result<Prim> {
    let data = TensorData::new(values, Shape::from(shape.to_vec()));
    from_data(data, E::DTYPE, device)
}

/// Uploads host values of any [`Element`] type (`values.len()` equals the product of `shape`,
/// checked by callers). Bool storage differs per backend (native, u8, u32): bools go up as
/// I64 and are compared.
pub(crate) fn upload<E: Element>(values: Vec<E>, shape: &[usize], device: Device) -> Result<Prim> {
    let values: Box<dyn Any> = Box::new(values);
    match E::DTYPE {
        DType::F32 => from_vec(host::<f32>(values)?, shape, device),
        DType::F64 => from_vec(host::<f64>(values)?, shape, device),
        DType::F16 => from_vec(host::<half::f16>(values)?, shape, device),
        DType::BF16 => from_vec(host::<half::bf16>(values)?, shape, device),
        DType::I64 => from_vec(host::<i64>(values)?, shape, device),
        DType::Bool => {
            let ints: Vec<i64> = host::<bool>(values)?.into_iter().map(i64::from).collect();
            Ok(cast(from_vec(ints, shape, device)?, DType::Bool))
        }
    }
}

/// Reads a primitive of dtype `E::DTYPE` back to the host.
pub(crate) fn download<E: Element>(p: Prim) -> Result<Vec<E>> {
    decode::<E>(into_data(readable(p))?)
}

/// [`download`] for devices whose reads finish later (WebGPU in a browser).
pub(crate) async fn download_async<E: Element>(p: Prim) -> Result<Vec<E>> {
    decode::<E>(into_data_async(readable(p)).await?)
}

/// Bool primitives are read as I64 (their storage differs per backend).
fn readable(p: Prim) -> Prim {
    match p.dtype() {
        DType::Bool => cast(p, DType::I64),
        _ => p,
    }
}

/// The host values of data read from a primitive of dtype `E::DTYPE` (bools read as I64).
fn decode<E: Element>(data: TensorData) -> Result<Vec<E>> {
    fn read<T: burn_backend::Element>(data: TensorData) -> Result<Vec<T>> {
        // A device may store a dtype narrower than Ember's (i32 for I64 under WGSL).
        let data = if data.dtype() != T::dtype() {
            data.convert::<T>()
        } else {
            data
        };
        data.try_into_vec::<T>().map_err(|e| Error::Backend {
            op: "to_vec",
            msg: format!("{e:?}"),
        })
    }
    let values: Box<dyn Any> = match E::DTYPE {
        DType::F32 => Box::new(read::<f32>(data)?),
        DType::F64 => Box::new(read::<f64>(data)?),
        DType::F16 => Box::new(read::<half::f16>(data)?),
        DType::BF16 => Box::new(read::<half::bf16>(data)?),
        DType::I64 => Box::new(read::<i64>(data)?),
        DType::Bool => {
            let ints = read::<i64>(data)?;
            Box::new(ints.into_iter().map(|v| v != 0).collect::<Vec<bool>>())
        }
    };
    host::<E>(values)
}

/// The `Vec<T>` inside `values` (an [`Element`]'s `DTYPE` names its Rust type, so the
/// conversion always holds).
fn host<T: 'static>(values: Box<dyn Any>) -> Result<Vec<T>> {
    values
        .downcast::<Vec<T>>()
        .map(|v| *v)
        .map_err(|_| Error::internal("to_vec", "an element type does not match its dtype"))
}

/// Uploads burn host data whose dtype is `dtype`'s host dtype.
pub fn from_data(data: TensorData, dtype: DType, device: Device) -> Result<Prim> {
    let dev = device.dispatch()?;
    Ok(match dtype {
        DType::I64 => Prim::int(B::int_from_data(int_data(data, &dev, "from_data")?, &dev)),
        DType::Bool => {
            let ints = int_data(data, &dev, "from_data")?;
            cast(Prim::int(B::int_from_data(ints, &dev)), DType::Bool)
        }
        _ => Prim::new(B::float_from_data(data, &dev), dtype),
    })
}

/// Reads a primitive back to the host (Bool primitives are read through `Element for bool`).
/// Where reads cannot block (WebGPU in a browser) a read that is not ready at once is an
/// error naming [`crate::Tensor::to_vec_async`].
pub(crate) fn into_data(p: Prim) -> Result<TensorData> {
    let res = match p.kind() {
        Kind::Float => try_read_sync(B::float_into_data(p.inner)),
        Kind::Int => try_read_sync(B::int_into_data(p.inner)),
        Kind::Bool => try_read_sync(B::bool_into_data(p.inner)),
    };
    let res = res.ok_or_else(|| Error::Backend {
        op: "to_vec",
        msg: "this device cannot be read synchronously here (WebGPU in a browser): \
              use to_vec_async"
            .to_string(),
    })?;
    res.map_err(|e| Error::Backend {
        op: "to_vec",
        msg: format!("{e:?}"),
    })
}

/// [`into_data`] awaiting the device.
pub(crate) async fn into_data_async(p: Prim) -> Result<TensorData> {
    let res = match p.kind() {
        Kind::Float => B::float_into_data(p.inner).await,
        Kind::Int => B::int_into_data(p.inner).await,
        Kind::Bool => B::bool_into_data(p.inner).await,
    };
    res.map_err(|e| Error::Backend {
        op: "to_vec_async",
        msg: format!("{e:?}"),
    })
}
