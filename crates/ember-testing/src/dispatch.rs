//! Replays a PyTorch fixture case in Ember by op name: the op tables (unary, arithmetic,
//! comparisons, reductions) by their names, every other op through a runner below.

use ember_core::{
    AttentionOpts, BinaryFn, CompareFn, ConvOpts, CrossEntropyOpts, DType, Device, ELLIPSIS, Ix,
    NEW_AXIS, Operand, PadMode, PoolOpts, ReduceFn, Reduction, Result, Tensor, UnaryFn,
};
use serde_json::Value;

fn i(args: &Value, k: &str) -> isize {
    args[k]
        .as_i64()
        .unwrap_or_else(|| panic!("arg {k} in {args}")) as isize
}

/// Cross-entropy options from a case's `reduction` and `smoothing` args.
fn ce_opts(a: &Value) -> CrossEntropyOpts {
    CrossEntropyOpts {
        reduction: match a["reduction"].as_str() {
            Some("sum") => Reduction::Sum,
            Some("none") => Reduction::None,
            _ => Reduction::Mean,
        },
        label_smoothing: f(a, "smoothing"),
        ..Default::default()
    }
}

fn f(args: &Value, k: &str) -> f64 {
    args[k]
        .as_f64()
        .unwrap_or_else(|| panic!("arg {k} in {args}"))
}

fn opt_f(args: &Value, k: &str) -> Option<f64> {
    args.get(k).and_then(Value::as_f64)
}

fn b(args: &Value, k: &str) -> bool {
    args[k]
        .as_bool()
        .unwrap_or_else(|| panic!("arg {k} in {args}"))
}

fn list(args: &Value, k: &str) -> Vec<isize> {
    args[k]
        .as_array()
        .unwrap_or_else(|| panic!("arg {k} in {args}"))
        .iter()
        .map(|v| v.as_i64().unwrap() as isize)
        .collect()
}

/// The dtype with the fixture generator's name (`"f32"`, `"bool"`, ...).
pub fn dtype_named(name: &str) -> DType {
    match name {
        "f32" => DType::F32,
        "f64" => DType::F64,
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        "i64" => DType::I64,
        "bool" => DType::Bool,
        other => panic!("unknown dtype {other}"),
    }
}

/// Replays a view recorded by the generator (`["transpose", d0, d1]`, `["narrow", d, s, n]`).
pub fn apply_view(t: Tensor, view: &Value) -> Result<Tensor> {
    let Some(v) = view.as_array() else {
        return Ok(t);
    };
    let n = |k: usize| v[k].as_i64().unwrap() as isize;
    match v[0].as_str().unwrap() {
        "transpose" => t.transpose(n(1), n(2)),
        "narrow" => t.narrow(n(1), n(2) as usize, n(3) as usize),
        other => panic!("unknown view {other}"),
    }
}

/// One op outside the tables, replayed from a fixture case: `(inputs, args, device)`.
type Runner = fn(&[Tensor], &Value, Device) -> Result<Vec<Tensor>>;

fn one(r: Result<Tensor>) -> Result<Vec<Tensor>> {
    r.map(|t| vec![t])
}

/// The ops the fixtures cover that are not in one of Ember's op tables, with how to run
/// each from a fixture case.
const OTHER_OPS: &[(&str, Runner)] = &[
    ("square", |x, _, _| one(x[0].square())),
    ("clamp", |x, a, _| {
        one(x[0].clamp(opt_f(a, "min"), opt_f(a, "max")))
    }),
    ("maximum", |x, _, _| one(x[0].maximum(&x[1]))),
    ("minimum", |x, _, _| one(x[0].minimum(&x[1]))),
    ("where", |x, _, _| one(Tensor::where_(&x[0], &x[1], &x[2]))),
    ("masked_fill", |x, a, _| {
        one(x[0].masked_fill(&x[1], f(a, "value")))
    }),
    ("argmax", |x, a, _| {
        one(x[0].argmax(i(a, "dim"), b(a, "keepdim")))
    }),
    ("argmin", |x, a, _| {
        one(x[0].argmin(i(a, "dim"), b(a, "keepdim")))
    }),
    ("var", |x, a, _| {
        let correction = i(a, "correction") as usize;
        one(x[0].var(&list(a, "dims"), correction, b(a, "keepdim")))
    }),
    ("std", |x, a, _| {
        let correction = i(a, "correction") as usize;
        one(x[0].std(&list(a, "dims"), correction, b(a, "keepdim")))
    }),
    ("lerp", |x, _, _| one(x[0].lerp(&x[1], &x[2]))),
    ("outer", |x, _, _| one(x[0].outer(&x[1]))),
    ("logsumexp", |x, a, _| {
        one(x[0].logsumexp(&list(a, "dims"), b(a, "keepdim")))
    }),
    ("softmax", |x, a, _| one(x[0].softmax(i(a, "dim")))),
    ("flip", |x, a, _| one(x[0].flip(&list(a, "dims")))),
    ("cumsum", |x, a, _| one(x[0].cumsum(i(a, "dim")))),
    ("log_softmax", |x, a, _| one(x[0].log_softmax(i(a, "dim")))),
    ("matmul", |x, _, _| one(x[0].matmul(&x[1]))),
    ("reshape", |x, a, _| one(x[0].reshape(&list(a, "shape")))),
    ("permute", |x, a, _| one(x[0].permute(&list(a, "axes")))),
    ("transpose", |x, a, _| {
        one(x[0].transpose(i(a, "d0"), i(a, "d1")))
    }),
    ("squeeze", |x, a, _| one(x[0].squeeze(i(a, "dim")))),
    ("unsqueeze", |x, a, _| one(x[0].unsqueeze(i(a, "dim")))),
    ("flatten", |x, a, _| {
        one(x[0].flatten(i(a, "start"), i(a, "end")))
    }),
    ("expand", |x, a, _| one(x[0].expand(&list(a, "shape")))),
    ("broadcast_to", |x, a, _| {
        let s: Vec<usize> = list(a, "shape").iter().map(|&v| v as usize).collect();
        one(x[0].broadcast_to(&s))
    }),
    ("narrow", |x, a, _| {
        one(x[0].narrow(i(a, "dim"), i(a, "start") as usize, i(a, "len") as usize))
    }),
    ("slice", |x, a, _| {
        let start = a["start"].as_i64().map(|v| v as isize);
        let end = a["end"].as_i64().map(|v| v as isize);
        one(x[0].slice(i(a, "dim"), start, end, i(a, "step") as usize))
    }),
    ("cat", |x, a, _| {
        one(Tensor::cat(&x.iter().collect::<Vec<_>>(), i(a, "dim")))
    }),
    ("stack", |x, a, _| {
        one(Tensor::stack(&x.iter().collect::<Vec<_>>(), i(a, "dim")))
    }),
    ("split", |x, a, _| {
        x[0].split(i(a, "size") as usize, i(a, "dim"))
    }),
    ("chunk", |x, a, _| {
        x[0].chunk(i(a, "chunks") as usize, i(a, "dim"))
    }),
    ("index_select", |x, a, _| {
        one(x[0].index_select(i(a, "dim"), &x[1]))
    }),
    ("gather", |x, a, _| one(x[0].gather(i(a, "dim"), &x[1]))),
    ("scatter_add", |x, a, _| {
        one(x[0].scatter_add(i(a, "dim"), &x[1], &x[2]))
    }),
    ("embedding", |x, _, _| one(x[0].embedding(&x[1]))),
    ("tril", |x, a, _| one(x[0].tril(i(a, "diagonal") as i64))),
    ("triu", |x, a, _| one(x[0].triu(i(a, "diagonal") as i64))),
    ("to_dtype", |x, a, _| {
        one(x[0].to_dtype(dtype_named(a["to"].as_str().unwrap_or_default())))
    }),
    ("arange", |_, a, device| {
        let out = if a["start"].is_i64() {
            DType::I64
        } else {
            DType::F32
        };
        one(Tensor::arange(
            f(a, "start"),
            f(a, "end"),
            f(a, "step"),
            out,
            device,
        ))
    }),
    ("eye", |_, a, device| {
        one(Tensor::eye(i(a, "n") as usize, DType::F32, device))
    }),
    ("layer_norm", |x, a, _| {
        one(x[0].layer_norm(Some(&x[1]), Some(&x[2]), f(a, "eps")))
    }),
    ("rms_norm", |x, a, _| {
        one(x[0].rms_norm(Some(&x[1]), f(a, "eps")))
    }),
    ("cross_entropy", |x, a, _| {
        one(x[0].cross_entropy(&x[1], ce_opts(a)))
    }),
    ("silu_mul", |x, _, _| one(x[0].silu_mul(&x[1]))),
    ("linear_cross_entropy", |x, a, _| {
        one(x[0].linear_cross_entropy(&x[1], &x[2], ce_opts(a)))
    }),
    ("scaled_dot_product_attention", |x, a, _| {
        let opts = AttentionOpts {
            mask: x.get(3).cloned(),
            causal: b(a, "causal"),
            scale: opt_f(a, "scale"),
            dropout_p: 0.0,
        };
        one(x[0].scaled_dot_product_attention(&x[1], &x[2], &opts))
    }),
];

fn sizes(args: &Value, k: &str) -> Vec<usize> {
    list(args, k).iter().map(|&v| v as usize).collect()
}

fn arr<const D: usize>(args: &Value, k: &str) -> [usize; D] {
    sizes(args, k)
        .try_into()
        .expect("one value per spatial dim")
}

fn conv<const D: usize>(a: &Value) -> ConvOpts<D> {
    ConvOpts {
        stride: arr(a, "stride"),
        padding: arr(a, "padding"),
        dilation: arr(a, "dilation"),
        groups: i(a, "groups") as usize,
    }
}

fn pool<const D: usize>(a: &Value) -> PoolOpts<D> {
    let p = PoolOpts::new(arr(a, "kernel"))
        .stride(arr(a, "stride"))
        .padding(arr(a, "padding"));
    match a.get("dilation") {
        Some(_) => p.dilation(arr(a, "dilation")),
        None => p,
    }
}

/// A fixture's index item: an int, `[start, end, step]` (nulls open), `"new"` or `"..."`.
fn index_item(v: &Value) -> Ix {
    match v {
        Value::String(s) if s == "new" => NEW_AXIS,
        Value::String(s) if s == "..." => ELLIPSIS,
        Value::Array(r) => Ix::step(
            r[0].as_i64().map(|v| v as isize),
            r[1].as_i64().map(|v| v as isize),
            r[2].as_u64().unwrap() as usize,
        ),
        v => Ix::At(v.as_i64().unwrap() as isize),
    }
}

fn pad_mode(a: &Value) -> PadMode {
    match a["mode"].as_str().unwrap() {
        "constant" => PadMode::Constant(f(a, "value")),
        "reflect" => PadMode::Reflect,
        "replicate" => PadMode::Replicate,
        "circular" => PadMode::Circular,
        other => panic!("unknown pad mode {other}"),
    }
}

fn in_place(x: &[Tensor], update: fn(&mut Tensor, &Tensor) -> Result<()>) -> Result<Vec<Tensor>> {
    let mut t = x[0].clone();
    update(&mut t, &x[1])?;
    Ok(vec![t])
}

/// The first-week ops (a PyTorch user's common calls), with how to run each from a case.
const FIRST_WEEK_OPS: &[(&str, Runner)] = &[
    ("cumprod", |x, a, _| one(x[0].cumprod(i(a, "dim")))),
    ("prod", |x, a, _| {
        one(x[0].prod(&list(a, "dims"), b(a, "keepdim")))
    }),
    ("sort", |x, a, _| {
        let (v, idx) = x[0].sort(i(a, "dim"), b(a, "descending"))?;
        Ok(vec![v, idx])
    }),
    ("argsort", |x, a, _| {
        one(x[0].argsort(i(a, "dim"), b(a, "descending")))
    }),
    ("topk", |x, a, _| {
        let (v, idx) = x[0].topk(i(a, "k") as usize, i(a, "dim"), b(a, "largest"))?;
        Ok(vec![v, idx])
    }),
    ("einsum", |x, a, _| {
        one(Tensor::einsum(
            a["equation"].as_str().unwrap(),
            &x.iter().collect::<Vec<_>>(),
        ))
    }),
    ("one_hot", |x, a, _| {
        let n = i(a, "num_classes");
        one(x[0].one_hot((n >= 0).then_some(n as usize)))
    }),
    (
        "pad",
        |x, a, _| one(x[0].pad(&list(a, "pads"), pad_mode(a))),
    ),
    ("repeat", |x, a, _| one(x[0].repeat(&sizes(a, "sizes")))),
    ("tile", |x, a, _| one(x[0].tile(&sizes(a, "reps")))),
    ("roll", |x, a, _| {
        one(x[0].roll(&list(a, "shifts"), &list(a, "dims")))
    }),
    ("diagonal", |x, a, _| {
        one(x[0].diagonal(i(a, "offset"), i(a, "dim1"), i(a, "dim2")))
    }),
    ("any", |x, a, _| {
        one(x[0].any(&list(a, "dims"), b(a, "keepdim")))
    }),
    ("all", |x, a, _| {
        one(x[0].all(&list(a, "dims"), b(a, "keepdim")))
    }),
    ("logical_and", |x, _, _| one(x[0].logical_and(&x[1]))),
    ("logical_or", |x, _, _| one(x[0].logical_or(&x[1]))),
    ("logical_xor", |x, _, _| one(x[0].logical_xor(&x[1]))),
    ("logical_not", |x, _, _| one(x[0].logical_not())),
    ("norm", |x, a, _| {
        let p: f64 = a["p"].as_str().unwrap().parse().unwrap();
        one(x[0].norm(p, &list(a, "dims"), b(a, "keepdim")))
    }),
    ("baddbmm", |x, a, _| {
        one(x[0].baddbmm(&x[1], &x[2], f(a, "beta"), f(a, "alpha")))
    }),
    ("masked_select", |x, _, _| one(x[0].masked_select(&x[1]))),
    ("nonzero", |x, _, _| one(x[0].nonzero())),
    ("where_scalar", |x, a, _| {
        let scalar = |k: &str| match &a[k] {
            Value::Null => None,
            v if v.is_i64() => Some(Operand::Int(v.as_i64().unwrap())),
            v => Some(Operand::Float(v.as_f64().unwrap())),
        };
        let t = scalar("true").unwrap_or(Operand::Tensor(&x[1]));
        let e = scalar("false").unwrap_or(Operand::Tensor(&x[1]));
        one(Tensor::where_(&x[0], t, e))
    }),
    ("conv1d", |x, a, _| {
        one(x[0].conv1d(&x[1], x.get(2), conv(a)))
    }),
    ("conv2d", |x, a, _| {
        one(x[0].conv2d(&x[1], x.get(2), conv(a)))
    }),
    ("max_pool1d", |x, a, _| one(x[0].max_pool1d(pool(a)))),
    ("max_pool2d", |x, a, _| one(x[0].max_pool2d(pool(a)))),
    ("avg_pool1d", |x, a, _| {
        one(x[0].avg_pool1d(pool(a), b(a, "count_include_pad")))
    }),
    ("avg_pool2d", |x, a, _| {
        one(x[0].avg_pool2d(pool(a), b(a, "count_include_pad")))
    }),
    ("adaptive_avg_pool1d", |x, a, _| {
        one(x[0].adaptive_avg_pool1d(arr(a, "out")))
    }),
    ("adaptive_avg_pool2d", |x, a, _| {
        one(x[0].adaptive_avg_pool2d(arr(a, "out")))
    }),
    ("adaptive_max_pool1d", |x, a, _| {
        one(x[0].adaptive_max_pool1d(arr(a, "out")))
    }),
    ("adaptive_max_pool2d", |x, a, _| {
        one(x[0].adaptive_max_pool2d(arr(a, "out")))
    }),
    ("index", |x, a, _| {
        let items: Vec<Ix> = a["index"]
            .as_array()
            .unwrap()
            .iter()
            .map(index_item)
            .collect();
        one(x[0].i(items))
    }),
    ("add_", |x, _, _| in_place(x, |t, o| t.add_(o))),
    ("sub_", |x, _, _| in_place(x, |t, o| t.sub_(o))),
    ("mul_", |x, _, _| in_place(x, |t, o| t.mul_(o))),
    ("div_", |x, _, _| in_place(x, |t, o| t.div_(o))),
    ("copy_", |x, _, _| in_place(x, |t, o| t.copy_(o))),
    ("fill_", |x, a, _| {
        let mut t = x[0].clone();
        t.fill_(f(a, "value"))?;
        Ok(vec![t])
    }),
];

/// The names of the first-week ops (the fixture table added for a PyTorch user's common calls).
pub fn first_week_ops() -> Vec<&'static str> {
    FIRST_WEEK_OPS.iter().map(|(name, _)| *name).collect()
}

/// Every op the PyTorch fixtures must cover: the names of Ember's op tables (unary,
/// arithmetic with tensors and scalars, comparisons, reductions) and of the other ops above.
/// A new op without a fixture case fails the fixture suites.
pub fn required_ops() -> Vec<&'static str> {
    let mut ops: Vec<&str> = UnaryFn::ALL.iter().map(|f| f.name()).collect();
    for f in BinaryFn::ALL {
        ops.extend([f.name(), f.scalar_name()]);
    }
    for f in CompareFn::ALL {
        ops.extend([f.name(), f.scalar_name()]);
    }
    ops.extend(ReduceFn::ALL.iter().map(|f| f.name()));
    ops.extend(OTHER_OPS.iter().map(|(name, _)| *name));
    ops.extend(FIRST_WEEK_OPS.iter().map(|(name, _)| *name));
    ops
}

/// The scalar operand of a tensor–scalar case (`scalar`, or `exponent` for `powf`).
fn scalar_arg(a: &Value) -> f64 {
    a.get("scalar")
        .or_else(|| a.get("exponent"))
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no scalar operand in {a}"))
}

/// Runs one fixture case's op in Ember: through the op tables by name, else the runners of the
/// other ops ([`required_ops`] lists both).
pub fn run(op: &str, x: &[Tensor], a: &Value, device: Device) -> Result<Vec<Tensor>> {
    if let Some(u) = UnaryFn::from_name(op) {
        return one(x[0].unary(u));
    }
    if let Some(f) = BinaryFn::from_name(op) {
        return one(x[0].binary(f, &x[1]));
    }
    if let Some(f) = BinaryFn::from_scalar_name(op) {
        return one(x[0].binary_scalar(f, scalar_arg(a)));
    }
    if let Some(c) = CompareFn::from_name(op) {
        return one(x[0].compare(c, &x[1]));
    }
    if let Some(c) = CompareFn::from_scalar_name(op) {
        return one(x[0].compare_scalar(c, scalar_arg(a)));
    }
    if let Some(r) = ReduceFn::from_name(op) {
        return one(x[0].reduce(r, &list(a, "dims"), b(a, "keepdim")));
    }
    match OTHER_OPS
        .iter()
        .chain(FIRST_WEEK_OPS)
        .find(|(name, _)| *name == op)
    {
        Some((_, runner)) => runner(x, a, device),
        None => panic!("the fixture op {op} has no Ember dispatch in ember-testing"),
    }
}
