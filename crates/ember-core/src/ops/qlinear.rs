//! Products with quantized weights ([`QTensor`]): `linear_q`, validated and recorded, with
//! its forward and backward in the kernel entry `kernels::qlinear`; and the conversions
//! between quantized blocks and tensors.

use crate::autograd::Op;
use crate::base::quant::{QFormat, QTensor, codec};
use crate::kernels;
use crate::{DType, Device, Error, Result, Tensor};

impl Tensor {
    /// `x Wᵀ + b` for a quantized `weight (out, in)` and `bias (out,)`: [`Tensor::linear`]
    /// without dequantizing the weight. On the CPU, f32 activations are quantized to 8-bit
    /// blocks on the fly and multiplied by integer dot products (as llama.cpp does), so the
    /// result matches the product with the dequantized weight to within that rounding.
    /// Gradients flow to `self` and `bias`; the weight is frozen.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType, quant::{QFormat, QTensor}};
    /// let w = QTensor::quantize(&Tensor::ones(&[4, 32], DType::F32, Device::Cpu)?, QFormat::Q4_0)?;
    /// let x = Tensor::full(&[2, 32], 0.5, DType::F32, Device::Cpu)?;
    /// let y = x.linear_q(&w, None)?; // (2, 4)
    /// assert!((y.to_vec::<f32>()?[0] - 16.0).abs() < 1e-3);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn linear_q(&self, weight: &QTensor, bias: Option<&Tensor>) -> Result<Tensor> {
        const OP: &str = "linear_q";
        let [n, k] = [weight.dims()[0], weight.dims()[1]];
        if !self.dtype().is_float() {
            return Err(Error::dtype(OP, &[self.dtype()], "needs float activations"));
        }
        if self.rank() == 0 || self.dims()[self.rank() - 1] != k {
            return Err(Error::shape(
                OP,
                &[self.dims(), weight.dims()],
                format!(
                    "input {:?} does not end in the weight's {k} columns (weight {:?})",
                    self.dims(),
                    weight.dims()
                ),
            ));
        }
        if let Some(b) = bias {
            self.same_device(OP, b)?;
            if b.dims() != [n] {
                return Err(Error::shape(
                    OP,
                    &[b.dims(), weight.dims()],
                    format!(
                        "bias {:?} is not ({n},) for weight {:?}",
                        b.dims(),
                        weight.dims()
                    ),
                ));
            }
        }
        let bias_same = bias.map(|b| b.to_dtype(self.dtype())).transpose()?;
        let y = kernels::qlinear::forward(self, weight, bias_same.as_ref())?;
        let mut inputs = vec![self];
        inputs.extend(bias);
        // The rule multiplies the gradient by the frozen blocks: `x`'s data is not read.
        Ok(y.record(&inputs, || Op::QLinear {
            x: self.graph_handle(),
            w: weight.clone(),
            bias: bias.cloned(),
        }))
    }
}

impl QTensor {
    /// Quantizes a float matrix `(rows, cols)` (any float dtype and device) to `format`, as
    /// llama.cpp's reference quantizers round (the K formats with plain min/max scales).
    pub fn quantize(t: &Tensor, format: QFormat) -> Result<QTensor> {
        let op = "QTensor::quantize";
        if !format.can_encode() {
            return Err(Error::data(
                op,
                format!("{format} is read from files only: quantize to Q4_K or a wider format"),
            ));
        }
        if !t.dtype().is_float() {
            return Err(Error::dtype(
                op,
                &[t.dtype()],
                "only float tensors are quantized",
            ));
        }
        let len = t.dims().iter().product::<usize>();
        let bytes_len = format
            .bytes_for(len)
            .ok_or_else(|| Error::shape(op, &[t.dims()], format!("not whole {format} blocks")))?;
        QTensor::check(op, format, t.dims(), bytes_len)?;
        let values = t.to_dtype(DType::F32)?.to_vec::<f32>()?;
        let mut bytes = vec![0u8; bytes_len];
        let (n, b) = (format.block_len(), format.block_bytes());
        for (x, out) in values.chunks_exact(n).zip(bytes.chunks_exact_mut(b)) {
            codec::encode(format, x, out);
        }
        QTensor::from_bytes(format, t.dims(), bytes)
    }

    /// The whole matrix as floats of `dtype` on `device`, each value as llama.cpp computes it.
    pub fn dequantize(&self, dtype: DType, device: Device) -> Result<Tensor> {
        let [rows, cols] = [self.dims()[0], self.dims()[1]];
        crate::base::memory::check_tensor(
            "QTensor::dequantize",
            self.dims(),
            DType::F32,
            Device::Cpu,
        )?;
        let mut values = vec![0f32; rows * cols];
        for (r, out) in values.chunks_exact_mut(cols.max(1)).enumerate() {
            self.dequantize_row(r, out);
        }
        Tensor::from_vec(values, self.dims(), Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)
    }

    /// Rows `ids` (I64 of any shape `S`) dequantized: `(S.., cols)` in `dtype` on `device`,
    /// as [`Tensor::embedding`] of the dequantized matrix, reading only those rows.
    pub fn embedding(&self, ids: &Tensor, dtype: DType, device: Device) -> Result<Tensor> {
        let op = "QTensor::embedding";
        let [rows, cols] = [self.dims()[0], self.dims()[1]];
        let idx = ids.to_dtype(DType::I64)?.to_vec::<i64>()?;
        if let Some(&bad) = idx.iter().find(|&&i| i < 0 || i as usize >= rows) {
            return Err(Error::Index {
                op,
                index: bad,
                size: rows,
                msg: format!("id {bad} is outside the {rows} rows"),
            });
        }
        crate::base::memory::check_tensor(op, &[idx.len(), cols], DType::F32, Device::Cpu)?;
        let mut values = vec![0f32; idx.len() * cols];
        for (&i, out) in idx.iter().zip(values.chunks_exact_mut(cols)) {
            self.dequantize_row(i as usize, out);
        }
        let mut shape = ids.dims().to_vec();
        shape.push(cols);
        Tensor::from_vec(values, &shape, Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)
    }
}
