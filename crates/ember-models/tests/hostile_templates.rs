//! Chat templates are programs from strangers' files: hostile ones (strings and lists built
//! by doubling, output floods, scans in loops, huge widths, replacements and joins, deep or
//! cyclic values, other templates, reserved names) are errors within a second, in a process
//! that stays under 1 GB, and never panic or abort. Real templates render well inside the
//! same limits.

use std::time::Duration;

use ember_models::{ChatTemplate, RenderLimits};
use ember_testing::gguf::{Meta, write};
use ember_testing::hostile::Hostile;
use ember_testing::read_fixture;
use ember_weights::GgufFile;
use serde_json::Value;

const MESSAGES: &[(&str, &str)] = &[
    ("system", "Be brief."),
    ("user", "Hi"),
    ("assistant", "Hello"),
];

fn render(source: &str) -> ember_core::Result<String> {
    ChatTemplate::new(source)?.render(MESSAGES, true)
}

/// `(name, template)` pairs that must each be an error.
const HOSTILE: &[(&str, &str)] = &[
    (
        "namespace string doubled 64 times",
        "{% set ns = namespace(s='a') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    ),
    (
        "string doubled with + in a loop",
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    ),
    (
        "list doubled",
        "{% set ns = namespace(l=[1, 2]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}",
    ),
    (
        "doubled without a loop",
        "{% set a = 'x' * 4000000 %}{% set b = a ~ a %}{% set c = b ~ b %}{% set d = c ~ c %}{% set e = d ~ d %}{{ e|length }}",
    ),
    (
        "doubled through macro recursion",
        "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}{% endmacro %}{{ d('a', 64) }}",
    ),
    (
        "a macro that calls itself twice",
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}x{% endmacro %}{{ f(40) }}",
    ),
    (
        "recursion without end",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    ),
    (
        "output flood",
        "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxxxxxxxx{% endfor %}{% endfor %}",
    ),
    (
        "a loop of scans of a large string",
        "{% set big = 'x' * 4000000 %}{% for i in range(100000) %}{% for j in range(100000) %}{% if 'y' in big %}{% endif %}{% endfor %}{% endfor %}",
    ),
    (
        "a loop doing nothing for long",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    ),
    ("printf width", "{{ '%999999999s'|format('a') }}"),
    ("printf precision", "{{ '%.999999999f'|format(1.5) }}"),
    ("str.format width", "{{ '{:>999999999}'.format('a') }}"),
    (
        "str.format huge width digits",
        "{{ '{:>99999999999999999999}'.format('a') }}",
    ),
    (
        "replace method",
        "{% set a = 'x' * 1000000 %}{{ a.replace('x', 'y' * 1000)|length }}",
    ),
    (
        "replace filter",
        "{% set a = 'x' * 1000000 %}{{ a|replace('x', 'y' * 1000)|length }}",
    ),
    (
        "replace of the empty string",
        "{% set a = 'x' * 100000 %}{{ a.replace('', 'y' * 1000)|length }}",
    ),
    ("join filter", "{{ (['x' * 1000000] * 1000)|join|length }}"),
    (
        "join method",
        "{{ ''.join(['x' * 1000000] * 1000)|length }}",
    ),
    (
        "list repeated 10^10 times",
        "{{ ([1] * 10000000000)|list|length }}",
    ),
    (
        "loop over a list repeated 10^12 times",
        "{% for x in [1] * 1000000000000 %}{% endfor %}",
    ),
    (
        "split into millions",
        "{{ ('a' * 4000000).split('a')|length }}",
    ),
    (
        "split filter into millions",
        "{{ ('a,' * 2000000)|split(',')|length }}",
    ),
    (
        "a string into a list of its characters",
        "{{ ('x' * 4000000)|list|length }}",
    ),
    ("indent width", "{{ 'a'|indent(999999999) }}"),
    (
        "indent of many lines",
        "{{ ('a\\n' * 1000000)|indent(4000) }}",
    ),
    ("sum of lists", "{{ ([[1] * 1000] * 1000)|sum }}"),
    ("tojson indent", "{{ messages|tojson(indent=100000) }}"),
    (
        "a namespace holding itself",
        "{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}",
    ),
    (
        "lists nested 100000 deep",
        "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x|tojson }}",
    ),
    (
        "namespaces nested deep",
        "{% set ns = namespace(n=namespace()) %}{% for i in range(100000) %}{% set ns.n = namespace(n=ns.n) %}{% endfor %}{{ ns }}",
    ),
    ("a budget filter used directly", "{{ 'a'|__ember_check }}"),
    (
        "a reserved name assigned",
        "{% set __ember_emit = 1 %}{{ 1 }}",
    ),
    ("include", "{% include 'chat' %}"),
    ("extends", "{% extends 'chat' %}"),
    ("import", "{% import 'chat' as x %}{{ 1 }}"),
    ("blocks", "{% block a %}x{% endblock %}"),
    (
        "range of 10^9",
        "{% for i in range(1000000000) %}{% endfor %}",
    ),
    ("string repeated 10^9 times", "{{ 'x' * 1000000000 }}"),
    (
        "string repeated to minijinja's limit",
        "{{ ('x' * 100000000)|length }}",
    ),
    (
        "string repeated at run time",
        "{% set n = 100000000 %}{{ ('x' * n)|length }}",
    ),
    ("raise_exception", "{{ raise_exception('no') }}"),
    (
        "constants folded into 1 GB",
        "{{ 'x' * 100000000 ~ 'x' * 100000000 ~ 'x' * 100000000 ~ 'x' * 100000000 ~ 'x' * 100000000 ~ 'x' * 100000000 ~ 'x' * 100000000 ~ 'x' * 100000000 ~ 'x' * 100000000 ~ 'x' * 100000000 }}",
    ),
    (
        "a constant list folded huge",
        "{% set l = [1, 2, 3] * 10 ** 12 %}{{ 1 }}",
    ),
    ("syntax error", "{% for %}"),
    ("unknown filter", "{{ 1|no_such_filter }}"),
];

#[test]
fn hostile_templates_are_errors_within_a_second_and_1_gb() {
    let mut h = Hostile::new("chat templates", Duration::from_secs(1), 1024.0);
    for (name, source) in HOSTILE {
        h.err(name, || render(source));
    }
    // A template file too large to be a template.
    h.err("a 2 MB template", || render(&"x".repeat(2 << 20)));
    // Shapes minijinja's compiler recurses along: each 100 000 deep would overflow the stack.
    let chain = |sep: &str, atom: &str| vec![atom; 100_000].join(sep);
    h.err("a chain of 100 000 ~", || {
        render(&format!("{{{{ {} }}}}", chain(" ~ ", "x")))
    });
    h.err("100 000 filters in a row", || {
        render(&format!("{{{{ x{} }}}}", "|trim".repeat(100_000)))
    });
    h.err("100 000 nots", || {
        render(&format!("{{{{ {}x }}}}", "not ".repeat(100_000)))
    });
    h.err("100 000 minus signs", || {
        render(&format!("{{{{ {}x }}}}", "-".repeat(100_000)))
    });
    h.err("100 000 attributes", || {
        render(&format!("{{{{ x{} }}}}", ".a".repeat(100_000)))
    });
    h.err("50 000 if-expressions", || {
        render(&format!("{{{{ {}2 }}}}", "1 if a else ".repeat(50_000)))
    });
    h.err("50 000 elifs", || {
        render(&format!(
            "{{% if a %}}1{}{{% endif %}}",
            "{% elif a %}1".repeat(50_000)
        ))
    });
    h.err("40 000 nested ifs", || {
        render(&format!(
            "{}x{}",
            "{% if true %}".repeat(40_000),
            "{% endif %}".repeat(40_000)
        ))
    });
    h.err("100 000 nested lists", || {
        render(&format!(
            "{{{{ {}1{} }}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        ))
    });
    h.ok("a chain of 200 ~", || {
        render(&format!("{{{{ {} }}}}", vec!["'a'"; 200].join(" ~ ")))
    });
    // Odd but harmless: long outputs within the limits, big values that stay small enough.
    h.ok("a million characters of output", || {
        render("{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}")
    });
    h.ok("a string doubled ten times", || {
        render("{% set ns = namespace(s='a') %}{% for i in range(10) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}")
    });
    h.ok("a namespace in a namespace", || {
        render("{% set ns = namespace(inner=namespace(x=1)) %}{{ ns.inner.x }}")
    });
    // The GGUF route of the issue: a model file whose template doubles a string.
    let dir = std::env::temp_dir().join(format!("ember-hostile-template-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bomb.gguf");
    let bomb = HOSTILE[0].1;
    let meta = vec![
        (
            "general.architecture".to_string(),
            Meta::Str("llama".into()),
        ),
        (
            "tokenizer.chat_template".to_string(),
            Meta::Str(bomb.into()),
        ),
    ];
    write(&path, &meta, &[("w".to_string(), vec![2], vec![0.0; 2])]).unwrap();
    h.err("a GGUF whose template doubles a string", || {
        let g = GgufFile::open(&path)?;
        let t = ChatTemplate::from_gguf(&g)?.expect("the file has a template");
        let err = t.render(MESSAGES, true).unwrap_err();
        assert!(
            err.to_string()
                .contains("bomb.gguf (tokenizer.chat_template)"),
            "the error names the file and key: {err}"
        );
        Err::<(), _>(err)
    });
    let _ = std::fs::remove_dir_all(&dir);
    h.finish();
}

/// Every published template of the fixtures renders every case under a twentieth of the
/// default limits (so the defaults leave them 20x room); the fuel each one needs at most is
/// printed.
#[test]
fn real_templates_render_well_inside_the_limits() {
    let d = RenderLimits::default();
    let tight = RenderLimits {
        fuel: d.fuel / 20,
        output_bytes: d.output_bytes / 20,
        value_bytes: d.value_bytes / 20,
        value_items: d.value_items / 20,
        work_bytes: d.work_bytes / 20,
        time: d.time,
    };
    let all: Value = serde_json::from_slice(&read_fixture("chat_templates.json")).unwrap();
    let mut n = 0;
    for (name, t) in all.as_object().unwrap() {
        let template = ChatTemplate::new(t["source"].as_str().unwrap())
            .unwrap()
            .with_special_tokens(t["bos_token"].as_str(), t["eos_token"].as_str())
            .with_limits(tight);
        for case in t["cases"].as_array().unwrap() {
            let got = template.render_json(
                &case["messages"],
                case["add_generation_prompt"].as_bool().unwrap(),
                &case["extra"],
            );
            if case["text"].is_string() {
                got.unwrap_or_else(|e| panic!("{name} {}: {e}", case["conversation"]));
                n += 1;
            }
        }
        // The least fuel that renders every case of this template (bisected).
        let renders_all = |fuel: u64| {
            let template = ChatTemplate::new(t["source"].as_str().unwrap())
                .unwrap()
                .with_special_tokens(t["bos_token"].as_str(), t["eos_token"].as_str())
                .with_limits(RenderLimits { fuel, ..tight });
            t["cases"].as_array().unwrap().iter().all(|case| {
                let ok = template.render_json(
                    &case["messages"],
                    case["add_generation_prompt"].as_bool().unwrap(),
                    &case["extra"],
                );
                ok.is_ok() || case["text"].is_null()
            })
        };
        let (mut lo, mut hi) = (1u64, tight.fuel);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if renders_all(mid) {
                hi = mid
            } else {
                lo = mid + 1
            }
        }
        eprintln!("{name}: needs {lo} fuel at most (default {})", d.fuel);
    }
    assert!(n >= 50, "{n} cases");
}
