//! The epoch data loader: every example once per epoch, batch sizes, drop-last, seeded
//! shuffles that differ per epoch, and a resume mid-epoch that sees the same batches.

use ember_core::{Device, Result, Tensor};
use ember_train::{DataLoader, Dataset};

/// Example `i` is `([i], [10 i])`.
struct Numbers(usize);

impl Dataset for Numbers {
    fn len(&self) -> usize {
        self.0
    }
    fn get(&self, i: usize, device: Device) -> Result<(Tensor, Tensor)> {
        Ok((
            Tensor::from_vec(vec![i as i64], &[1], device)?,
            Tensor::from_vec(vec![10 * i as i64], &[1], device)?,
        ))
    }
}

/// The ids of each batch of the current epoch.
fn epoch(loader: &mut DataLoader<Numbers>) -> Vec<Vec<i64>> {
    let mut batches = Vec::new();
    while let Some((x, y)) = loader.next_batch().unwrap() {
        let ids = x.to_vec::<i64>().unwrap();
        let tens: Vec<i64> = ids.iter().map(|i| 10 * i).collect();
        assert_eq!(
            y.to_vec::<i64>().unwrap(),
            tens,
            "targets follow their inputs"
        );
        batches.push(ids);
    }
    batches
}

#[test]
fn every_example_once_per_epoch_in_batches() {
    let mut loader = DataLoader::new(Numbers(10), 4, Device::Cpu).unwrap();
    let sizes: Vec<usize> = epoch(&mut loader).iter().map(Vec::len).collect();
    assert_eq!((sizes, loader.epoch()), (vec![4, 4, 2], 1));
    let mut dropping = DataLoader::new(Numbers(10), 4, Device::Cpu)
        .unwrap()
        .drop_last(true);
    assert_eq!(dropping.batches_per_epoch(), 2);
    assert_eq!(
        epoch(&mut dropping),
        vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]]
    );
    assert!(DataLoader::new(Numbers(3), 0, Device::Cpu).is_err());
    let mut empty = DataLoader::new(Numbers(0), 2, Device::Cpu).unwrap();
    assert!(
        empty
            .next_batch()
            .unwrap_err()
            .to_string()
            .contains("empty")
    );
}

#[test]
fn shuffles_are_seeded_per_epoch_and_resume_mid_epoch() {
    let mut a = DataLoader::new(Numbers(10), 3, Device::Cpu)
        .unwrap()
        .shuffle(5);
    let (e0, e1) = (epoch(&mut a), epoch(&mut a));
    for e in [&e0, &e1] {
        let mut all: Vec<i64> = e.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<i64>>(), "a permutation");
    }
    assert_ne!(e0, e1, "each epoch its own order");
    assert_ne!(e0.concat(), (0..10).collect::<Vec<i64>>(), "shuffled");
    let mut b = DataLoader::new(Numbers(10), 3, Device::Cpu)
        .unwrap()
        .shuffle(5);
    assert_eq!(epoch(&mut b), e0, "the same seed, the same batches");
    // A run stopped after two batches of epoch 1 resumes where it was.
    let mut resumed = DataLoader::new(Numbers(10), 3, Device::Cpu)
        .unwrap()
        .shuffle(5);
    resumed.seek(1, 2).unwrap();
    assert_eq!(resumed.position(), (1, 2));
    assert_eq!(epoch(&mut resumed), e1[2..].to_vec());
    assert!(resumed.seek(0, 9).is_err());
}
