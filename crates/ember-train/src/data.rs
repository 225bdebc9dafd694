//! Datasets: a token stream sampled as random contiguous windows, and an in-memory dataset
//! trait for anything else.

use ember_core::{Device, Error, Generator, Result, Tensor};

/// A dataset of `(input, target)` examples that a user can implement for their own data.
pub trait Dataset {
    /// Number of examples.
    fn len(&self) -> usize;
    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Example `i` as `(input, target)` tensors.
    fn get(&self, i: usize, device: Device) -> Result<(Tensor, Tensor)>;
}

impl<D: Dataset + ?Sized> Dataset for &D {
    fn len(&self) -> usize {
        (**self).len()
    }

    fn get(&self, i: usize, device: Device) -> Result<(Tensor, Tensor)> {
        (**self).get(i, device)
    }
}

/// Inputs and targets already in two tensors, example `i` being row `i` of each (PyTorch's
/// `TensorDataset` of two tensors).
///
/// ```
/// use ember_core::{DType, Device, Tensor};
/// use ember_train::{DataLoader, Dataset, TensorDataset};
/// let x = Tensor::randn(&[10, 3], DType::F32, Device::Cpu)?; // (N, features)
/// let y = Tensor::arange(0.0, 10.0, 1.0, DType::I64, Device::Cpu)?; // (N,) labels
/// let data = TensorDataset::new(x, y)?;
/// assert_eq!(data.len(), 10);
/// let mut loader = DataLoader::new(data, 4, Device::Cpu)?.shuffle(0);
/// let (xb, yb) = loader.next_batch()?.unwrap();
/// assert_eq!((xb.dims(), yb.dims()), (&[4, 3][..], &[4][..]));
/// # Ok::<(), ember_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TensorDataset {
    inputs: Tensor,  // (N, ...)
    targets: Tensor, // (N, ...)
}

impl TensorDataset {
    /// Pairs row `i` of `inputs` with row `i` of `targets`; both need the same length along
    /// dim 0.
    pub fn new(inputs: Tensor, targets: Tensor) -> Result<TensorDataset> {
        let n = |t: &Tensor| t.dims().first().copied();
        if inputs.rank() == 0 || n(&inputs) != n(&targets) {
            return Err(Error::shape(
                "TensorDataset::new",
                &[inputs.dims(), targets.dims()],
                "inputs and targets need the same length along dim 0",
            ));
        }
        Ok(TensorDataset { inputs, targets })
    }

    /// The inputs and the targets.
    pub fn tensors(&self) -> (&Tensor, &Tensor) {
        (&self.inputs, &self.targets)
    }
}

impl Dataset for TensorDataset {
    fn len(&self) -> usize {
        self.inputs.dims()[0]
    }

    fn get(&self, i: usize, device: Device) -> Result<(Tensor, Tensor)> {
        if i >= self.len() {
            return Err(Error::data(
                "TensorDataset::get",
                format!("example {i} of {}", self.len()),
            ));
        }
        let row = |t: &Tensor| t.narrow(0, i, 1)?.squeeze(0)?.to_device(device);
        Ok((row(&self.inputs)?, row(&self.targets)?))
    }
}

/// A source of random training batches: what [`crate::Trainer::fit`] draws from.
pub trait Batches {
    /// `batch` random examples stacked: `(inputs, targets)`.
    fn sample(&self, g: &mut Generator, batch: usize, device: Device) -> Result<(Tensor, Tensor)>;
    /// Tokens (or examples) per sampled row, for throughput figures.
    fn tokens_per_row(&self) -> usize;
    /// What the throughput counts: `"tokens"` for token windows, `"rows"` for examples.
    fn unit(&self) -> &'static str {
        "tokens"
    }
}

/// Batches of any [`Dataset`]: random examples (with replacement) stacked along a new dim 0.
#[derive(Debug, Clone)]
pub struct Sampled<D>(pub D);

impl<D: Dataset> Batches for Sampled<D> {
    fn sample(&self, g: &mut Generator, batch: usize, device: Device) -> Result<(Tensor, Tensor)> {
        if self.0.is_empty() {
            return Err(Error::data("Sampled::sample", "the dataset is empty"));
        }
        let (mut xs, mut ys) = (Vec::with_capacity(batch), Vec::with_capacity(batch));
        for _ in 0..batch {
            let (x, y) = self
                .0
                .get((g.next_u64() % self.0.len() as u64) as usize, device)?;
            xs.push(x);
            ys.push(y);
        }
        Ok((
            Tensor::stack(&xs.iter().collect::<Vec<_>>(), 0)?,
            Tensor::stack(&ys.iter().collect::<Vec<_>>(), 0)?,
        ))
    }

    fn tokens_per_row(&self) -> usize {
        1
    }

    fn unit(&self) -> &'static str {
        "rows"
    }
}

/// A token array read as random contiguous windows: inputs `tokens[i..i+T]`, targets
/// `tokens[i+1..i+T+1]` (next-token prediction).
#[derive(Debug, Clone)]
pub struct TokenStream {
    tokens: Vec<i64>,
    block: usize,
}

impl TokenStream {
    /// Windows of `block` tokens over `tokens` (needs more than `block` tokens).
    pub fn new(tokens: Vec<i64>, block: usize) -> Result<TokenStream> {
        if block == 0 || tokens.len() <= block {
            return Err(Error::data(
                "TokenStream",
                format!("{} tokens are too few for windows of {block}", tokens.len()),
            ));
        }
        Ok(TokenStream { tokens, block })
    }

    /// The first `fraction` of the tokens and the rest, as a train/validation split.
    pub fn split(self, fraction: f64) -> Result<(TokenStream, TokenStream)> {
        let cut = (self.tokens.len() as f64 * fraction) as usize;
        let (a, b) = self.tokens.split_at(cut.min(self.tokens.len()));
        Ok((
            TokenStream::new(a.to_vec(), self.block)?,
            TokenStream::new(b.to_vec(), self.block)?,
        ))
    }

    /// Window length.
    pub fn block(&self) -> usize {
        self.block
    }

    /// Number of distinct window starts.
    pub fn windows(&self) -> usize {
        self.tokens.len() - self.block
    }

    /// A batch of `batch` random windows: inputs and targets, both `(B, T)` I64.
    pub fn sample_windows(
        &self,
        g: &mut Generator,
        batch: usize,
        device: Device,
    ) -> Result<(Tensor, Tensor)> {
        let t = self.block;
        let mut x = Vec::with_capacity(batch * t);
        let mut y = Vec::with_capacity(batch * t);
        for _ in 0..batch {
            let start = (g.next_u64() % self.windows() as u64) as usize;
            x.extend_from_slice(&self.tokens[start..start + t]);
            y.extend_from_slice(&self.tokens[start + 1..start + t + 1]);
        }
        Ok((
            Tensor::from_vec(x, &[batch, t], device)?,
            Tensor::from_vec(y, &[batch, t], device)?,
        ))
    }
}

impl Batches for TokenStream {
    fn sample(&self, g: &mut Generator, batch: usize, device: Device) -> Result<(Tensor, Tensor)> {
        self.sample_windows(g, batch, device)
    }

    fn tokens_per_row(&self) -> usize {
        self.block
    }
}

impl Dataset for TokenStream {
    fn len(&self) -> usize {
        self.windows()
    }

    fn get(&self, i: usize, device: Device) -> Result<(Tensor, Tensor)> {
        if i >= self.windows() {
            return Err(Error::index(
                "TokenStream::get",
                i as i64,
                self.windows(),
                format!("window {i} of {}", self.windows()),
            ));
        }
        let t = self.block;
        Ok((
            Tensor::from_vec(self.tokens[i..i + t].to_vec(), &[t], device)?,
            Tensor::from_vec(self.tokens[i + 1..i + t + 1].to_vec(), &[t], device)?,
        ))
    }
}
