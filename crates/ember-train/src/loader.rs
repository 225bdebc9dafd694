//! Epochs over a [`Dataset`], as `torch.utils.data.DataLoader`: every example once per epoch,
//! in a seeded random order when shuffling, stacked into batches, the last partial batch kept
//! unless dropped; a position that a resumed run seeks back to.

use ember_core::{Device, Error, Generator, Result, Tensor};

use crate::data::Dataset;

/// Batches of a [`Dataset`], epoch after epoch.
///
/// ```
/// use ember_core::{Device, Result, Tensor};
/// use ember_train::{DataLoader, Dataset};
///
/// struct Squares;
/// impl Dataset for Squares {
///     fn len(&self) -> usize { 10 }
///     fn get(&self, i: usize, device: Device) -> Result<(Tensor, Tensor)> {
///         let x = Tensor::from_vec(vec![i as f32], &[1], device)?;
///         Ok((x.clone(), x.square()?))
///     }
/// }
///
/// let mut loader = DataLoader::new(Squares, 4, Device::Cpu)?.shuffle(7);
/// let mut rows = 0;
/// while let Some((x, y)) = loader.next_batch()? { // (4, 1), (4, 1), then (2, 1)
///     rows += x.dims()[0];
/// }
/// assert_eq!((rows, loader.epoch()), (10, 1)); // one epoch done, the next begins
/// # Ok::<(), ember_core::Error>(())
/// ```
pub struct DataLoader<D> {
    data: D,
    batch: usize,
    device: Device,
    seed: Option<u64>,
    drop_last: bool,
    epoch: u64,
    /// Batches of this epoch already given.
    next: usize,
    /// This epoch's order of examples.
    order: Vec<usize>,
}

impl<D: Dataset> DataLoader<D> {
    /// Batches of `batch` examples of `data` on `device`, in order (see
    /// [`DataLoader::shuffle`]), the last partial batch kept.
    pub fn new(data: D, batch: usize, device: Device) -> Result<DataLoader<D>> {
        if batch == 0 {
            return Err(Error::data("DataLoader", "the batch size must be positive"));
        }
        let mut loader = DataLoader {
            data,
            batch,
            device,
            seed: None,
            drop_last: false,
            epoch: 0,
            next: 0,
            order: Vec::new(),
        };
        loader.order = loader.order_of(0);
        Ok(loader)
    }

    /// Shuffles each epoch: epoch `e`'s order depends only on `seed` and `e`, so a run
    /// resumed with [`DataLoader::seek`] sees the same batches.
    pub fn shuffle(mut self, seed: u64) -> DataLoader<D> {
        self.seed = Some(seed);
        self.order = self.order_of(self.epoch);
        self
    }

    /// Drops the last batch of an epoch when it is partial (`drop_last=True`).
    pub fn drop_last(mut self, drop: bool) -> DataLoader<D> {
        self.drop_last = drop;
        self
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let n = self.data.len();
        if self.drop_last {
            n / self.batch
        } else {
            n.div_ceil(self.batch)
        }
    }

    /// The current epoch (0 first).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// `(epoch, batches of it given)`: what [`DataLoader::seek`] takes to resume here.
    pub fn position(&self) -> (u64, usize) {
        (self.epoch, self.next)
    }

    /// Continues from a [`DataLoader::position`]: the next batch is batch `next` of `epoch`.
    pub fn seek(&mut self, epoch: u64, next: usize) -> Result<()> {
        if next > self.batches_per_epoch() {
            return Err(Error::data(
                "DataLoader::seek",
                format!(
                    "batch {next} is past the {} of an epoch",
                    self.batches_per_epoch()
                ),
            ));
        }
        (self.epoch, self.next) = (epoch, next);
        self.order = self.order_of(epoch);
        Ok(())
    }

    /// The next batch of this epoch, inputs and targets stacked along a new dim 0; `None`
    /// when the epoch is over (the next call starts the next one).
    pub fn next_batch(&mut self) -> Result<Option<(Tensor, Tensor)>> {
        if self.data.is_empty() {
            return Err(Error::data("DataLoader", "the dataset is empty"));
        }
        if self.next >= self.batches_per_epoch() {
            self.seek(self.epoch + 1, 0)?;
            return Ok(None);
        }
        let start = self.next * self.batch;
        let rows = &self.order[start..(start + self.batch).min(self.order.len())];
        let (mut xs, mut ys) = (
            Vec::with_capacity(rows.len()),
            Vec::with_capacity(rows.len()),
        );
        for &i in rows {
            let (x, y) = self.data.get(i, self.device)?;
            xs.push(x);
            ys.push(y);
        }
        self.next += 1;
        Ok(Some((
            Tensor::stack(&xs.iter().collect::<Vec<_>>(), 0)?,
            Tensor::stack(&ys.iter().collect::<Vec<_>>(), 0)?,
        )))
    }

    /// The examples' order in `epoch`: in order, or a Fisher-Yates shuffle seeded by the seed
    /// and the epoch.
    fn order_of(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.data.len()).collect();
        if let Some(seed) = self.seed {
            let mut g = Generator::new(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for i in (1..order.len()).rev() {
                let j = (g.next_u64() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
        }
        order
    }
}
