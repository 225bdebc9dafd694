//! Chat templates are programs from strangers' files, so every render runs on a budget.
//!
//! minijinja bounds recursion, `range` and string repetition, and counts instructions (its
//! fuel), but a template can still build a string or a list by doubling it a few dozen
//! times, or scan a large value in a loop, and take the process down. Ember compiles the
//! template with minijinja as usual, then weaves three filters of its own into the
//! instructions before running them on minijinja's VM:
//!
//! - after every instruction that builds a value (arithmetic, `~`, filters, calls, lists,
//!   maps, slices, captured output), `__ember_check` measures it (bytes, and items of lists
//!   and maps, nested ones included) against [`RenderLimits::value_bytes`] and
//!   [`RenderLimits::value_items`] and charges it to [`RenderLimits::work_bytes`], which
//!   bounds both the template's memory and its copying;
//! - before every emission, `__ember_emit` charges the text to [`RenderLimits::output_bytes`];
//! - at every loop iteration and after reads and comparisons, `__ember_tick` checks the
//!   clock against [`RenderLimits::time`].
//!
//! Builtins whose result can outgrow their input many times over check the size before they
//! build it (`functions.rs`). A template that names the filters, or includes, extends or
//! imports other templates (whose instructions would run unchecked), is refused when it is
//! compiled. Exceeding a limit is an error that names the limit and where the template came
//! from.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use web_time::{Duration, Instant};

use minijinja::machinery::{self, Instruction, Instructions};
use minijinja::value::ValueKind;
use minijinja::{Environment, ErrorKind, Value};

/// The names of the budget filters; a template may not use names with this prefix.
pub(super) const RESERVED: &str = "__ember_";
const CHECK: &str = "__ember_check";
const EMIT: &str = "__ember_emit";
const TICK: &str = "__ember_tick";
const SHAPE: &str = "__ember_shape";
/// A filter's local id that minijinja never caches (each call looks the filter up by name).
const UNCACHED: u8 = !0;

/// What one render of a chat template may use. The defaults are far above what real
/// templates need (the published templates in Ember's fixtures use at most a few thousand
/// instructions and a few KB) and far below what would hurt the process.
///
/// ```
/// use ember_models::RenderLimits;
/// let l = RenderLimits::default();
/// assert!(l.work_bytes <= 512 << 20 && l.time.as_millis() <= 500);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// Instructions the template may execute (minijinja's fuel).
    pub fuel: u64,
    /// Bytes of rendered text.
    pub output_bytes: usize,
    /// Bytes of one value (a string; a list or map counted with everything inside it).
    pub value_bytes: usize,
    /// Items of one list or map, nested ones included.
    pub value_items: usize,
    /// Bytes all values the template builds may hold together, each counted once however
    /// short-lived: bounds the memory the template can take and the copying it can do.
    pub work_bytes: usize,
    /// Wall-clock time of one render.
    pub time: Duration,
}

impl Default for RenderLimits {
    fn default() -> Self {
        RenderLimits {
            fuel: 5_000_000,
            output_bytes: 32 << 20,
            value_bytes: 8 << 20,
            value_items: 1 << 20,
            work_bytes: 256 << 20,
            time: Duration::from_millis(250),
        }
    }
}

/// The budget of the render running on this thread.
struct Budget {
    limits: RenderLimits,
    work_left: usize,
    output_left: usize,
    deadline: Instant,
}

thread_local! {
    static BUDGET: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

/// Makes the budget filters known to `env` and sets its fuel.
pub(super) fn install(env: &mut Environment<'static>, limits: &RenderLimits) {
    env.set_fuel(Some(limits.fuel));
    env.add_filter(CHECK, |v: Value| charge(v, true));
    env.add_filter(TICK, |v: Value| charge(v, false));
    env.add_filter(EMIT, emit);
    env.add_filter(SHAPE, shape);
}

/// `__ember_shape`: a namespace just assigned to, refused when it now nests too deep or holds
/// itself (measuring a cycle passes the depth limit), so nothing ever prints or serializes a
/// cycle.
fn shape(v: Value) -> Result<Value, minijinja::Error> {
    with_budget(|b| {
        check_clock(b)?;
        match measure(&v, &b.limits).exceeds(&b.limits) {
            Some(what) => Err(limit_error(format!("{what} (a namespace holding itself?)"))),
            None => Ok(()),
        }
    })?;
    Ok(v)
}

fn limit_error(what: String) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, what)
}

fn with_budget<T>(
    f: impl FnOnce(&mut Budget) -> Result<T, minijinja::Error>,
) -> Result<Option<T>, minijinja::Error> {
    BUDGET.with_borrow_mut(|b| b.as_mut().map(f).transpose())
}

fn check_clock(b: &Budget) -> Result<(), minijinja::Error> {
    if Instant::now() > b.deadline {
        return Err(limit_error(format!(
            "rendering took longer than the {:?} limit",
            b.limits.time
        )));
    }
    Ok(())
}

/// `__ember_check` (with `work`) and `__ember_tick`: `v` unchanged, or an error when it is
/// too large, when the work budget is spent or when time is up.
fn charge(v: Value, work: bool) -> Result<Value, minijinja::Error> {
    with_budget(|b| {
        check_clock(b)?;
        if work {
            let size = measure(&v, &b.limits);
            if let Some(what) = size.exceeds(&b.limits) {
                return Err(limit_error(what));
            }
            b.work_left = b
                .work_left
                .checked_sub(size.bytes + size.items)
                .ok_or_else(|| {
                    limit_error(format!(
                        "the template built more than {} bytes of values",
                        b.limits.work_bytes
                    ))
                })?;
        }
        Ok(())
    })?;
    Ok(v)
}

/// Counts written bytes, refusing to go past `left`.
struct Counter {
    written: usize,
    left: usize,
}

impl std::fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.written += s.len();
        if self.written > self.left {
            return Err(std::fmt::Error);
        }
        Ok(())
    }
}

/// `__ember_emit`: charges `v`'s text to the output budget.
fn emit(v: Value) -> Result<Value, minijinja::Error> {
    with_budget(|b| {
        check_clock(b)?;
        let written = match v.as_str() {
            Some(s) => s.len(),
            None => {
                // Printing recurses: the depth first (a namespace cannot hold itself, see
                // `SetAttr` in `rewrite`, so the walk ends).
                if let Some(what) = measure(&v, &b.limits).exceeds(&b.limits) {
                    return Err(limit_error(what));
                }
                let mut c = Counter {
                    written: 0,
                    left: b.output_left,
                };
                let _ = write!(c, "{v}");
                c.written
            }
        };
        b.output_left = b.output_left.checked_sub(written).ok_or_else(|| {
            limit_error(format!(
                "the rendered text exceeds {} bytes",
                b.limits.output_bytes
            ))
        })?;
        Ok(())
    })?;
    Ok(v)
}

/// How deep values may nest (their printing and serialization recurse).
const MAX_DEPTH: usize = 64;

/// The size of a value: bytes of its strings, items of its lists and maps (nested ones
/// included; a shared value counts each time it appears) and how deep they nest. Measuring
/// stops once a limit is passed.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Size {
    pub bytes: usize,
    pub items: usize,
    pub depth: usize,
}

impl Size {
    fn exceeds(&self, limits: &RenderLimits) -> Option<String> {
        if self.depth > MAX_DEPTH {
            Some(format!("a value nested deeper than {MAX_DEPTH}"))
        } else if self.bytes > limits.value_bytes {
            Some(format!(
                "a value of more than {} bytes (limit {})",
                self.bytes, limits.value_bytes
            ))
        } else if self.items > limits.value_items {
            Some(format!(
                "a value of more than {} items (limit {})",
                self.items, limits.value_items
            ))
        } else {
            None
        }
    }
}

/// Measures `v` (see [`Size`]).
pub(super) fn measure(v: &Value, limits: &RenderLimits) -> Size {
    let mut size = Size::default();
    let mut stack = vec![(v.clone(), 1usize)];
    while let Some((v, depth)) = stack.pop() {
        size.depth = size.depth.max(depth);
        if size.exceeds(limits).is_some() {
            break;
        }
        match v.kind() {
            ValueKind::String => size.bytes += v.as_str().map_or(0, str::len),
            ValueKind::Bytes => size.bytes += v.as_bytes().map_or(0, <[u8]>::len),
            ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => {
                if let Some(n) = v.len()
                    && n > limits.value_items - size.items
                {
                    size.items += n;
                    break;
                }
                let Ok(iter) = v.try_iter() else { continue };
                let map = v.kind() == ValueKind::Map;
                for x in iter {
                    size.items += 1;
                    if size.items > limits.value_items {
                        break;
                    }
                    if map && let Ok(value) = v.get_item(&x) {
                        stack.push((value, depth + 1));
                    }
                    stack.push((x, depth + 1));
                }
            }
            _ => size.bytes += 8,
        }
    }
    size
}

/// The limits of the render running on this thread (the defaults outside a render).
pub(super) fn current_limits() -> RenderLimits {
    BUDGET.with_borrow(|b| b.as_ref().map_or_else(RenderLimits::default, |b| b.limits))
}

/// What each instruction becomes: `Check` an instruction that builds a value followed by
/// `__ember_check`, `Tick` one that reads or compares followed by `__ember_tick`.
enum Weave {
    Keep,
    Check,
    Tick,
}

fn weave(i: &Instruction) -> Result<Weave, String> {
    use Instruction as I;
    Ok(match i {
        I::Add | I::Sub | I::Mul | I::Div | I::IntDiv | I::Rem | I::Pow | I::Neg => Weave::Check,
        I::StringConcat | I::BuildList(_) | I::BuildMap(_) | I::Slice | I::EndCapture => {
            Weave::Check
        }
        I::ApplyFilter(..) | I::CallFunction(..) | I::CallMethod(..) | I::CallObject(..) => {
            Weave::Check
        }
        I::GetAttr(_) | I::GetItem | I::Eq | I::Ne | I::Gt | I::Gte | I::Lt | I::Lte => Weave::Tick,
        I::Not | I::In | I::PerformTest(..) => Weave::Tick,
        I::Include(_) | I::LoadBlocks | I::CallBlock(_) | I::FastSuper | I::ExportLocals => {
            return Err(
                "templates that include, import or extend other templates are not supported".into(),
            );
        }
        _ => Weave::Keep,
    })
}

/// The names an instruction refers to (variables, attributes, filters, tests, functions).
fn names<'a>(i: &Instruction<'a>) -> Option<&'a str> {
    use Instruction as I;
    match i {
        I::StoreLocal(n) | I::Lookup(n) | I::GetAttr(n) | I::SetAttr(n) | I::Enclose(n) => Some(n),
        I::ApplyFilter(n, ..) | I::PerformTest(n, ..) | I::CallFunction(n, _) => Some(n),
        I::CallMethod(n, _) | I::BuildMacro(n, ..) => Some(n),
        _ => None,
    }
}

/// `ins` with the budget filters woven in and every jump target moved with its instruction.
pub(super) fn rewrite<'s>(ins: &Instructions<'s>) -> Result<Instructions<'s>, String> {
    let n = ins.len() as u32;
    let get = |i: u32| {
        ins.get(i)
            .ok_or_else(|| format!("instruction {i} is missing"))
    };
    // Where each instruction lands (one past the end too, a valid jump target).
    let mut moved = Vec::with_capacity(n as usize + 1);
    let mut at = 0u32;
    for i in 0..n {
        let instr = get(i)?;
        if let Some(name) = names(instr)
            && name.starts_with(RESERVED)
        {
            return Err(format!("the name {name} is reserved"));
        }
        moved.push(at);
        at += match instr {
            Instruction::EmitRaw(_) => 3,
            Instruction::Emit | Instruction::Iterate(_) => 2,
            Instruction::SetAttr(_) => 4,
            other => match weave(other)? {
                Weave::Keep => 1,
                Weave::Check | Weave::Tick => 2,
            },
        };
    }
    moved.push(at);
    let target = |t: &u32| -> Result<u32, String> {
        moved
            .get(*t as usize)
            .copied()
            .ok_or_else(|| format!("a jump to {t} leaves the template"))
    };
    let mut out = Instructions::new(ins.name(), ins.source());
    for i in 0..n {
        let span = ins.get_span(i);
        let line = ins.get_line(i);
        let mut add = |instr: Instruction<'s>| match (span, line) {
            (Some(s), _) => {
                out.add_with_span(instr, s);
            }
            (None, Some(l)) => {
                out.add_with_line(instr, u16::try_from(l).unwrap_or(u16::MAX));
            }
            (None, None) => {
                out.add(instr);
            }
        };
        let filter = |name| Instruction::ApplyFilter(name, Some(1), UNCACHED);
        match get(i)?.clone() {
            Instruction::EmitRaw(text) => {
                add(Instruction::LoadConst(Value::from_safe_string(
                    text.to_string(),
                )));
                add(filter(EMIT));
                add(Instruction::Emit);
            }
            Instruction::Emit => {
                add(filter(EMIT));
                add(Instruction::Emit);
            }
            Instruction::Iterate(t) => {
                add(Instruction::Iterate(target(&t)?));
                add(filter(TICK));
            }
            Instruction::Jump(t) => add(Instruction::Jump(target(&t)?)),
            Instruction::JumpIfFalse(t) => add(Instruction::JumpIfFalse(target(&t)?)),
            Instruction::JumpIfFalseOrPop(t) => add(Instruction::JumpIfFalseOrPop(target(&t)?)),
            Instruction::JumpIfTrueOrPop(t) => add(Instruction::JumpIfTrueOrPop(target(&t)?)),
            Instruction::BuildMacro(name, t, flags) => {
                add(Instruction::BuildMacro(name, target(&t)?, flags))
            }
            Instruction::SetAttr(attr) => {
                // `{% set ns.attr = v %}` looks `ns` up right before: measure it again after.
                let Some(Instruction::Lookup(ns)) = i.checked_sub(1).and_then(|p| ins.get(p))
                else {
                    return Err("an attribute assignment to something other than a name".into());
                };
                add(Instruction::SetAttr(attr));
                add(Instruction::Lookup(ns));
                add(filter(SHAPE));
                add(Instruction::DiscardTop);
            }
            other => {
                let woven = weave(&other)?;
                add(other);
                match woven {
                    Weave::Keep => {}
                    Weave::Check => add(filter(CHECK)),
                    Weave::Tick => add(filter(TICK)),
                }
            }
        }
    }
    debug_assert_eq!(out.len() as u32, at);
    Ok(out)
}

/// Renders template `name` of `env` with `ctx` under `limits`, on minijinja's VM with the
/// budget filters woven in.
pub(super) fn render(
    env: &Environment<'static>,
    name: &str,
    ctx: Value,
    limits: &RenderLimits,
) -> Result<String, minijinja::Error> {
    let template = env.get_template(name)?;
    let compiled = machinery::get_compiled_template(&template);
    if !compiled.blocks.is_empty() {
        return Err(limit_error(
            "templates with blocks are not supported".into(),
        ));
    }
    let instructions = rewrite(&compiled.instructions).map_err(limit_error)?;
    let _budget = Scope::enter(Budget {
        limits: *limits,
        work_left: limits.work_bytes,
        output_left: limits.output_bytes,
        deadline: Instant::now() + limits.time,
    });
    let mut text = String::new();
    let mut out = machinery::make_string_output(&mut text);
    machinery::Vm::new(env).eval(
        &instructions,
        ctx,
        &BTreeMap::new(),
        &mut out,
        compiled.initial_auto_escape,
    )?;
    drop(out);
    Ok(text)
}

/// This thread's budget while a render runs; the enclosing one is restored when it ends.
struct Scope(Option<Budget>);

impl Scope {
    fn enter(budget: Budget) -> Scope {
        Scope(BUDGET.replace(Some(budget)))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        BUDGET.set(self.0.take());
    }
}
