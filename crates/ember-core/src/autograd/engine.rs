//! The backward pass: topological order, rule application, accumulation, graph release.

use std::collections::{HashMap, HashSet};

use crate::autograd::{Op, rules};
use crate::kernels::accumulate::accumulate as add_gradients;
use crate::{DType, Error, Result, Tensor, TensorId, no_grad};

/// Gradients of the leaves (tensors made with `requires_grad(true)`) that a loss depends on,
/// keyed by tensor identity.
#[derive(Debug, Default, Clone)]
pub struct Gradients {
    map: HashMap<TensorId, Tensor>,
}

impl Gradients {
    /// The gradient of `t`, if the loss depends on it.
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.map.get(&t.id())
    }

    /// Removes and returns the gradient of `t`.
    pub fn remove(&mut self, t: &Tensor) -> Option<Tensor> {
        self.map.remove(&t.id())
    }

    /// Sets (replaces) the gradient of `t`, e.g. after clipping.
    pub fn insert(&mut self, t: &Tensor, grad: Tensor) {
        self.map.insert(t.id(), grad);
    }

    /// Number of stored gradients.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no gradient is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes of the stored gradients.
    pub fn nbytes(&self) -> u64 {
        self.map
            .values()
            .map(|t| (t.numel() * t.dtype().size_in_bytes()) as u64)
            .sum()
    }

    /// Adds another store into this one (gradient accumulation over micro-batches).
    pub fn accumulate(&mut self, other: Gradients) -> Result<()> {
        for (id, g) in other.map {
            let sum = match self.map.remove(&id) {
                Some(prev) => add_gradients(prev, &g)?,
                None => g,
            };
            self.map.insert(id, sum);
        }
        Ok(())
    }
}

/// Reverse-mode differentiation from a tensor.
pub trait Backward {
    /// Gradients of this scalar with respect to every leaf it depends on. Frees the graph:
    /// a second call is an error (see [`Backward::backward_retain`]).
    fn backward(&self) -> Result<Gradients>;

    /// As [`Backward::backward`], seeded with an upstream gradient of this tensor's shape
    /// (for non-scalar outputs, as `y.backward(gradient=g)`).
    fn backward_with(&self, grad: &Tensor) -> Result<Gradients>;

    /// As [`Backward::backward_with`], keeping the graph for another backward pass
    /// (`retain_graph=True`).
    fn backward_retain(&self, grad: &Tensor) -> Result<Gradients>;

    /// As [`Backward::backward`], calling `on_final(leaf, gradient)` for each leaf as soon as
    /// its gradient is complete (no later rule adds to it), while the rest of the backward is
    /// still to run: what data-parallel training needs to start summing gradients early
    /// (PyTorch's gradient hooks). An error from `on_final` ends the backward and is returned.
    fn backward_with_hook(&self, on_final: &mut LeafHook<'_>) -> Result<Gradients>;
}

/// A callback of [`Backward::backward_with_hook`]: `(leaf, its complete gradient)`.
pub type LeafHook<'a> = dyn FnMut(&Tensor, &Tensor) -> Result<()> + 'a;

impl Backward for Tensor {
    fn backward(&self) -> Result<Gradients> {
        if self.numel() != 1 {
            return Err(Error::Autograd {
                msg: format!(
                    "the output has shape {:?}; backward() needs a single element, use \
                     backward_with(upstream gradient) for other shapes",
                    self.dims()
                ),
            });
        }
        let seed = self.detach().ones_like()?;
        run(self, seed, false, None)
    }

    fn backward_with_hook(&self, on_final: &mut LeafHook<'_>) -> Result<Gradients> {
        if self.numel() != 1 {
            return Err(Error::Autograd {
                msg: format!(
                    "the output has shape {:?}; backward_with_hook() needs a single element",
                    self.dims()
                ),
            });
        }
        let seed = self.detach().ones_like()?;
        run(self, seed, false, Some(on_final))
    }

    fn backward_with(&self, grad: &Tensor) -> Result<Gradients> {
        run(self, checked_seed(self, grad)?, false, None)
    }

    fn backward_retain(&self, grad: &Tensor) -> Result<Gradients> {
        run(self, checked_seed(self, grad)?, true, None)
    }
}

fn checked_seed(root: &Tensor, grad: &Tensor) -> Result<Tensor> {
    if grad.dims() != root.dims() {
        return Err(Error::Autograd {
            msg: format!(
                "the upstream gradient has shape {:?}, the output {:?}",
                grad.dims(),
                root.dims()
            ),
        });
    }
    grad.detach()
        .to_dtype(root.dtype())?
        .to_device(root.device())
}

/// Tracked op results reachable from `root`, parents before children (root first).
fn reverse_topological(root: &Tensor) -> Vec<(Tensor, Op)> {
    let mut post = Vec::new();
    let mut seen = HashSet::new();
    // (tensor, children pushed?)
    let mut stack = vec![(root.clone(), false)];
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            if let Some(op) = t.grad_op() {
                post.push((t, op));
            }
            continue;
        }
        if !seen.insert(t.id()) {
            continue;
        }
        let Some(op) = t.grad_op() else { continue };
        stack.push((t.clone(), true));
        for input in op.inputs() {
            if input.is_tracked() && !seen.contains(&input.id()) {
                stack.push((input.clone(), false));
            }
        }
    }
    post.reverse();
    post
}

/// For each node of `nodes`, the leaves whose gradient is complete once it has run (the last
/// node that takes them as input).
fn final_leaves(nodes: &[(Tensor, Op)]) -> Vec<Vec<Tensor>> {
    let mut last: HashMap<TensorId, (usize, Tensor)> = HashMap::new();
    for (i, (_, op)) in nodes.iter().enumerate() {
        for input in op.inputs() {
            if input.is_tracked() && input.grad_op().is_none() {
                last.insert(input.id(), (i, input.clone()));
            }
        }
    }
    let mut finals = vec![Vec::new(); nodes.len()];
    for (i, leaf) in last.into_values() {
        finals[i].push(leaf);
    }
    finals
}

fn run(
    root: &Tensor,
    seed: Tensor,
    retain: bool,
    mut on_final: Option<&mut LeafHook<'_>>,
) -> Result<Gradients> {
    // Backward rules run in the dtypes the forward recorded, never re-cast by autocast.
    let _no_autocast = crate::base::autocast_mode::autocast_off();
    if !root.is_tracked() {
        return Err(Error::Autograd {
            msg: "the output does not depend on any tensor that requires a gradient".into(),
        });
    }
    if root.is_consumed() {
        return Err(Error::Autograd {
            msg: "the graph was already consumed by an earlier backward; use backward_retain \
                  to run backward twice"
                .into(),
        });
    }
    let _guard = no_grad();
    let nodes = reverse_topological(root);
    let finals = match on_final {
        Some(_) => final_leaves(&nodes),
        None => Vec::new(),
    };
    let mut profile = profile::Profile::from_env();
    let mut grads: HashMap<TensorId, Tensor> = HashMap::new();
    grads.insert(root.id(), seed);
    for (i, (out, op)) in nodes.iter().enumerate() {
        if let (Some(hook), Some(done)) = (on_final.as_deref_mut(), i.checked_sub(1)) {
            // The leaves completed by the previous node (whether or not a gradient reached it).
            for leaf in &finals[done] {
                if let Some(g) = grads.get(&leaf.id()) {
                    hook(leaf, g)?;
                }
            }
        }
        let Some(g) = grads.remove(&out.id()) else {
            continue;
        };
        if let Op::NotDifferentiable { name, .. } = op {
            return Err(Error::NotDifferentiable { op: name });
        }
        let inputs = op.inputs();
        let started = profile.start();
        let in_grads = rules::backward(op, out, &g)?;
        profile.record(op.name(), started);
        if inputs.len() != in_grads.len() {
            return Err(Error::internal(
                "backward",
                format!(
                    "the rule of {} gave {} gradients for {} inputs",
                    op.name(),
                    in_grads.len(),
                    inputs.len()
                ),
            ));
        }
        for (input, ig) in inputs.into_iter().zip(in_grads) {
            let Some(ig) = ig else { continue };
            if !input.is_tracked() {
                continue;
            }
            let started = profile.start();
            accumulate(&mut grads, input, ig)?;
            profile.record("(accumulate gradients)", started);
        }
        let started = profile.start();
        drop(g);
        profile.record("(free output gradients)", started);
    }
    if let (Some(hook), Some(last)) = (on_final, finals.last()) {
        for leaf in last {
            if let Some(g) = grads.get(&leaf.id()) {
                hook(leaf, g)?;
            }
        }
    }
    let started = profile.start();
    if !retain {
        for (out, _) in &nodes {
            out.take_grad_op();
        }
    }
    profile.record("(free the graph)", started);
    profile.report();
    Ok(Gradients { map: grads })
}

fn accumulate(grads: &mut HashMap<TensorId, Tensor>, input: &Tensor, g: Tensor) -> Result<()> {
    if g.dims() != input.dims() {
        return Err(Error::internal(
            "backward",
            format!(
                "a rule gave a gradient of shape {:?} for an input of shape {:?}",
                g.dims(),
                input.dims()
            ),
        ));
    }
    let g = if g.dtype() != input.dtype() && input.dtype() != DType::Bool {
        g.to_dtype(input.dtype())?
    } else {
        g
    };
    let sum = match grads.remove(&input.id()) {
        Some(prev) => add_gradients(prev, &g)?,
        None => g,
    };
    grads.insert(input.id(), sum);
    Ok(())
}

mod profile {
    //! `EMBER_PROFILE_BACKWARD=1`: time spent in each op's backward rule, in accumulating and
    //! freeing gradients and in freeing the graph, printed to stderr after every backward pass
    //! (for finding what to optimize).
    use std::collections::BTreeMap;
    use web_time::Instant;

    pub(super) struct Profile(Option<BTreeMap<&'static str, (u32, f64)>>);

    impl Profile {
        pub(super) fn from_env() -> Profile {
            let on = std::env::var("EMBER_PROFILE_BACKWARD").is_ok_and(|v| v == "1");
            Profile(on.then(BTreeMap::new))
        }

        pub(super) fn start(&self) -> Option<Instant> {
            self.0.as_ref().map(|_| Instant::now())
        }

        pub(super) fn record(&mut self, name: &'static str, started: Option<Instant>) {
            if let (Some(map), Some(t)) = (self.0.as_mut(), started) {
                let e = map.entry(name).or_insert((0, 0.0));
                e.0 += 1;
                e.1 += t.elapsed().as_secs_f64() * 1e3;
            }
        }

        pub(super) fn report(&self) {
            if let Some(map) = &self.0 {
                let mut rows: Vec<_> = map.iter().collect();
                rows.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
                let total: f64 = rows.iter().map(|r| r.1.1).sum();
                eprintln!("backward: {total:.1} ms in rules and bookkeeping");
                for (name, (n, ms)) in rows {
                    eprintln!("  {name:<28} {n:>4} calls {ms:>9.2} ms");
                }
            }
        }
    }
}
