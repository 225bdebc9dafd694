//! DDP's synchronisation on ranks simulated by threads (a process group over shared memory,
//! here only): gradients summed in buckets of any size, missing gradients counted as zeros,
//! parameters broadcast from rank 0 and checked equal; and the one-process group.

use std::sync::{Arc, Barrier, Mutex};

use ember_core::{DType, Device, Gradients, Result, Tensor};
use ember_dist::ddp::{all_reduce_gradients, broadcast_parameters, check_parameters_equal};
use ember_dist::{ProcessGroup, SingleProcess};
use ember_nn::{VarBuilder, VarStore};

/// Ranks as threads: each collective posts this rank's buffer, waits for all, reads the sum.
#[derive(Debug)]
struct Threads {
    rank: usize,
    world: usize,
    barrier: Arc<Barrier>,
    slots: Arc<Mutex<Vec<Vec<f64>>>>,
}

impl Threads {
    fn group(world: usize) -> Vec<Threads> {
        let barrier = Arc::new(Barrier::new(world));
        let slots = Arc::new(Mutex::new(vec![Vec::new(); world]));
        (0..world)
            .map(|rank| Threads {
                rank,
                world,
                barrier: barrier.clone(),
                slots: slots.clone(),
            })
            .collect()
    }

    /// Every rank's `values`, in rank order.
    fn exchange(&self, values: Vec<f64>) -> Vec<Vec<f64>> {
        self.slots.lock().unwrap()[self.rank] = values;
        self.barrier.wait();
        let all = self.slots.lock().unwrap().clone();
        self.barrier.wait();
        all
    }
}

impl ProcessGroup for Threads {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        let all = self.exchange(buf.iter().map(|v| *v as f64).collect());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = all.iter().fold(0f32, |s, r| s + r[i] as f32);
        }
        Ok(())
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        let all = self.exchange(buf.to_vec());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = all.iter().fold(0.0, |s, r| s + r[i]);
        }
        Ok(())
    }
    fn broadcast(&self, buf: &mut [u8], root: usize) -> Result<()> {
        let all = self.exchange(buf.iter().map(|b| *b as f64).collect());
        for (b, v) in buf.iter_mut().zip(&all[root]) {
            *b = *v as u8;
        }
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        self.barrier.wait();
        Ok(())
    }
}

/// A store with three parameters whose values depend on `seed`.
fn store(seed: u64) -> VarStore {
    let store = VarStore::with_seed(Device::Cpu, DType::F32, seed);
    let vb = VarBuilder::new(&store);
    for (name, dims) in [("a", vec![3, 4]), ("b", vec![5]), ("c", vec![2, 2])] {
        let init = ember_nn::Init::Normal {
            mean: 0.0,
            std: 1.0,
        };
        vb.get(name, &dims, init).unwrap();
    }
    store
}

#[test]
fn gradients_are_summed_over_ranks_in_any_bucket_size() {
    for bucket_bytes in [4, 20, 64, 1 << 20] {
        let ranks = Threads::group(3);
        let results: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
            let handles: Vec<_> = ranks
                .iter()
                .map(|g| {
                    s.spawn(move || {
                        let st = store(0);
                        let params = st.trainable_parameters();
                        let mut grads = Gradients::default();
                        for (i, p) in params.iter().enumerate() {
                            // Rank 1 has no gradient for the second parameter.
                            if g.rank == 1 && i == 1 {
                                continue;
                            }
                            let t = p.tensor();
                            let v = vec![(g.rank + 1) as f32 * (i + 1) as f32; t.numel()];
                            grads.insert(&t, Tensor::from_vec(v, t.dims(), Device::Cpu).unwrap());
                        }
                        all_reduce_gradients(&mut grads, &params, g, bucket_bytes).unwrap();
                        params
                            .iter()
                            .map(|p| grads.get(&p.tensor()).unwrap().to_vec::<f32>().unwrap())
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, want) in [6.0f32, 2.0 * (1.0 + 3.0), 18.0].iter().enumerate() {
            for r in &results {
                assert!(
                    r[i].iter().all(|v| v == want),
                    "bucket {bucket_bytes}: {r:?}"
                );
            }
        }
    }
}

#[test]
fn parameters_come_from_rank_zero_and_are_checked() {
    let ranks = Threads::group(2);
    let outcomes: Vec<(Vec<f32>, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = ranks
            .iter()
            .map(|g| {
                s.spawn(move || {
                    let st = store(g.rank as u64); // different values on each rank
                    let params: Vec<_> =
                        st.named_parameters().into_iter().map(|(_, p)| p).collect();
                    let differed = check_parameters_equal(&params, g).is_err();
                    broadcast_parameters(&params, g).unwrap();
                    (params[0].tensor().to_vec::<f32>().unwrap(), differed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        outcomes.iter().all(|(_, differed)| *differed),
        "unequal ranks must be seen"
    );
    assert_eq!(outcomes[0].0, outcomes[1].0);
    let rank0 = store(0).named_parameters()[0]
        .1
        .tensor()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(outcomes[1].0, rank0, "rank 1 holds rank 0's values");
}

#[test]
fn the_single_process_group_changes_nothing() {
    let g = SingleProcess;
    let mut v = vec![1.5f32, -2.0];
    g.all_reduce_sum(&mut v).unwrap();
    assert_eq!(v, [1.5, -2.0]);
    assert!(
        g.broadcast(&mut [1u8], 1).is_err(),
        "no rank 1 in a group of one"
    );
    let st = store(0);
    let params = st.trainable_parameters();
    broadcast_parameters(&params, &g).unwrap();
    check_parameters_equal(&params, &g).unwrap();
    assert!(!ember_dist::launched_by_mpi() || std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some());
}
