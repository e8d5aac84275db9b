//! Templates in paths, bodies and headers (PRODUCT §4), compiled once at load.
//!
//! A template is a list of segments; rendering appends them to a caller-owned
//! `String` so the per-operation path reuses one buffer and allocates nothing.
//!
//! | template            | renders                                                  |
//! |---------------------|----------------------------------------------------------|
//! | `{{key}}`           | the operation's key (chosen by the key distribution)     |
//! | `{{ref}}`           | the operation's unique ref (run id, shard, sequence)     |
//! | `{{int A B}}`       | a uniform integer in `A..=B`                             |
//! | `{{float A B}}`     | a uniform number in `A..B`, with as many decimals as the bounds show (2 if none) |
//! | `{{choice a b c}}`  | one of the words                                         |
//! | `{{uuid}}`          | a random (v4-shaped) UUID, reproducible from the seed    |
//! | `{{now_ms}}`        | wall-clock Unix time in milliseconds at render time      |
//! | `{{bytes N}}`       | N characters of filler                                   |
//! | `{{capture.NAME}}`  | the latest value captured as NAME for this key ("" if none yet) |
//!
//! Only in `[projection] until` (issue 31, [`Template::compile_probe`]): facts of the probed
//! command that the harness computes itself.
//!
//! | template              | renders                                                |
//! |-----------------------|--------------------------------------------------------|
//! | `{{key.acked}}`       | acknowledged commands of the probe's set on the key, this one included |
//! | `{{key.expected}}`    | `[verify] value`'s expected number on the key after this command |
//! | `{{key.expected.NAME}}` | the same, of the value named NAME (`[verify] value = [{ name = "NAME", … }]`) |
//! | `{{body./pointer}}`   | a value of the request body the command sent           |

use std::fmt::Write as _;

use rand::{Rng, RngExt as _};

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Key,
    Ref,
    Int(i64, i64),
    Float {
        low: f64,
        high: f64,
        decimals: usize,
    },
    Choice(Vec<String>),
    Uuid,
    NowMs,
    Bytes(usize),
    Capture(String),
    /// A fact of the probed command (`[projection] until` only).
    Fact(FactName),
}

/// A fact of a probed command the harness knows (issue 31): rendered only by the lag probe.
#[derive(Debug, Clone, PartialEq)]
pub enum FactName {
    /// `{{key.acked}}`.
    KeyAcked,
    /// `{{key.expected}}`, or `{{key.expected.NAME}}`.
    KeyExpected(Option<String>),
    /// `{{body./pointer}}`: a JSON pointer into the request body.
    Body(String),
}

impl std::fmt::Display for FactName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FactName::KeyAcked => f.write_str("{{key.acked}}"),
            FactName::KeyExpected(None) => f.write_str("{{key.expected}}"),
            FactName::KeyExpected(Some(name)) => write!(f, "{{{{key.expected.{name}}}}}"),
            FactName::Body(pointer) => write!(f, "{{{{body.{pointer}}}}}"),
        }
    }
}

/// A template that does not compile: where (byte offset into the template text) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// Byte offset of the faulty `{{` in the template text.
    pub offset: usize,
    pub message: String,
}

/// What a rendering needs besides the random generator.
pub struct RenderContext<'a> {
    pub key: &'a str,
    pub op_ref: &'a str,
    pub captures: &'a dyn CaptureLookup,
}

/// Source of `{{capture.NAME}}` values, and for a lag probe of the command's facts.
pub trait CaptureLookup {
    fn capture(&self, name: &str) -> Option<&str>;
    /// A fact of the probed command (`{{key.acked}}`…); `None` renders nothing.
    fn fact(&self, _name: &FactName) -> Option<String> {
        None
    }
}

/// No captures (setup requests, tests).
pub struct NoCaptures;

impl CaptureLookup for NoCaptures {
    fn capture(&self, _: &str) -> Option<&str> {
        None
    }
}

impl CaptureLookup for Vec<(String, String)> {
    fn capture(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

const FILLER: &str = "abcdefghijklmnopqrstuvwxyz0123456789";

impl Template {
    /// Compiles `text`; `{{` opens a template expression and `}}` closes it.
    pub fn compile(text: &str) -> Result<Template, TemplateError> {
        Template::compile_with(text, false)
    }

    /// Compiles `[projection] until`'s value: the probed command's facts are allowed too.
    pub fn compile_probe(text: &str) -> Result<Template, TemplateError> {
        Template::compile_with(text, true)
    }

    fn compile_with(text: &str, facts: bool) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                segments.push(Segment::Literal(rest[..open].to_owned()));
            }
            let start = offset + open;
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(TemplateError { offset: start, message: "unclosed `{{`: expected `}}`".into() });
            };
            let segment = parse_expression(after[..close].trim(), start)?;
            if let (Segment::Fact(fact), false) = (&segment, facts) {
                return Err(TemplateError {
                    offset: start,
                    message: format!("`{fact}` is a fact of a probed command: only `[projection] until` can render it"),
                });
            }
            segments.push(segment);
            let consumed = open + 2 + close + 2;
            rest = &rest[consumed..];
            offset += consumed;
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_owned()));
        }
        Ok(Template { segments })
    }

    /// A template that renders `text` as it is.
    pub fn literal(text: &str) -> Template {
        Template { segments: vec![Segment::Literal(text.to_owned())] }
    }

    /// Appends the rendering to `out`.
    pub fn render_into(&self, ctx: &RenderContext<'_>, rng: &mut impl Rng, out: &mut String) {
        for segment in &self.segments {
            match segment {
                Segment::Literal(s) => out.push_str(s),
                Segment::Key => out.push_str(ctx.key),
                Segment::Ref => out.push_str(ctx.op_ref),
                Segment::Int(low, high) => {
                    let _ = write!(out, "{}", rng.random_range(*low..=*high));
                }
                Segment::Float { low, high, decimals } => {
                    let _ = write!(out, "{:.decimals$}", uniform_float(*low, *high, rng));
                }
                Segment::Choice(words) => {
                    out.push_str(&words[rng.random_range(0..words.len())]);
                }
                Segment::Uuid => {
                    let uuid = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
                    let _ = write!(out, "{}", uuid.hyphenated());
                }
                Segment::NowMs => {
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                    let _ = write!(out, "{}", now.as_millis());
                }
                Segment::Bytes(n) => {
                    let mut left = *n;
                    while left > 0 {
                        let take = left.min(FILLER.len());
                        out.push_str(&FILLER[..take]);
                        left -= take;
                    }
                }
                Segment::Capture(name) => out.push_str(ctx.captures.capture(name).unwrap_or("")),
                Segment::Fact(name) => out.push_str(&ctx.captures.fact(name).unwrap_or_default()),
            }
        }
    }

    /// Renders into a new `String` (tests, setup, probes: not the hot path).
    pub fn render(&self, ctx: &RenderContext<'_>, rng: &mut impl Rng) -> String {
        let mut out = String::new();
        self.render_into(ctx, rng, &mut out);
        out
    }

    /// The bytes every rendering holds at least: its text and `{{bytes N}}` fillers (the
    /// other expressions are short; a capture is bounded by the answer it came from).
    /// What the load bounds requests in flight by (issue 32).
    pub fn fixed_len(&self) -> usize {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(s) => s.len(),
                Segment::Bytes(n) => *n,
                _ => 0,
            })
            .fold(0usize, usize::saturating_add)
    }

    /// The text, when the template has no expressions.
    pub fn as_literal(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [] => Some(""),
            [Segment::Literal(s)] => Some(s),
            _ => None,
        }
    }

    pub fn uses_ref(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Ref))
    }

    pub fn uses_key(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Key))
    }

    pub fn uses_captures(&self) -> bool {
        self.capture_names().next().is_some()
    }

    /// The command facts it reads (`{{key.acked}}`, `{{key.expected}}`, `{{body./p}}`).
    pub fn facts(&self) -> impl Iterator<Item = &FactName> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Fact(name) => Some(name),
            _ => None,
        })
    }

    /// Names read by `{{capture.NAME}}`.
    pub fn capture_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Capture(name) => Some(name.as_str()),
            _ => None,
        })
    }
}

/// A uniform value in `low..high` (finite bounds, checked at compile). When the span
/// `high - low` overflows to infinity (`{{float -1e308 1e308}}`), rand's range sampler
/// panics, so the value is drawn as a convex combination instead, which stays finite
/// (issue 16).
fn uniform_float(low: f64, high: f64, rng: &mut impl Rng) -> f64 {
    if low >= high {
        low
    } else if (high - low).is_finite() {
        rng.random_range(low..high)
    } else {
        let u: f64 = rng.random();
        (low * (1.0 - u) + high * u).clamp(low, high)
    }
}

fn parse_expression(expr: &str, offset: usize) -> Result<Segment, TemplateError> {
    let err = |message: String| TemplateError { offset, message };
    let mut words = expr.split_whitespace();
    let head = words.next().ok_or_else(|| err("empty `{{}}`".into()))?;
    let args: Vec<&str> = words.collect();
    let no_args = |segment: Segment| {
        if args.is_empty() { Ok(segment) } else { Err(err(format!("`{{{{{head}}}}}` takes no arguments"))) }
    };
    match head {
        "key" => no_args(Segment::Key),
        "ref" => no_args(Segment::Ref),
        "uuid" => no_args(Segment::Uuid),
        "now_ms" => no_args(Segment::NowMs),
        "int" => {
            let [a, b] = two_args(head, &args).map_err(err)?;
            let parse =
                |s: &str| s.parse::<i64>().map_err(|_| err(format!("`{{{{int A B}}}}`: `{s}` is not an integer")));
            let (low, high) = (parse(a)?, parse(b)?);
            if low > high {
                return Err(err(format!("`{{{{int {low} {high}}}}}`: A must not exceed B")));
            }
            Ok(Segment::Int(low, high))
        }
        "float" => {
            let [a, b] = two_args(head, &args).map_err(err)?;
            let parse = |s: &str| match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(err(format!("`{{{{float A B}}}}`: `{s}` is not a finite number"))),
            };
            let (low, high) = (parse(a)?, parse(b)?);
            if low > high {
                return Err(err(format!("`{{{{float {a} {b}}}}}`: A must not exceed B")));
            }
            let decimals_of = |s: &str| s.split_once('.').map_or(0, |(_, d)| d.len());
            let decimals = match decimals_of(a).max(decimals_of(b)) {
                0 => 2,
                d => d.min(9),
            };
            Ok(Segment::Float { low, high, decimals })
        }
        "choice" => {
            if args.is_empty() {
                return Err(err("`{{choice ...}}` needs at least one word".into()));
            }
            Ok(Segment::Choice(args.iter().map(|s| (*s).to_owned()).collect()))
        }
        "bytes" => match args.as_slice() {
            [n] => n
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= 16 * 1024 * 1024)
                .map(Segment::Bytes)
                .ok_or_else(|| err(format!("`{{{{bytes N}}}}`: `{n}` is not a size up to 16 MiB"))),
            _ => Err(err("`{{bytes N}}` takes one argument".into())),
        },
        "key.acked" => no_args(Segment::Fact(FactName::KeyAcked)),
        "key.expected" => no_args(Segment::Fact(FactName::KeyExpected(None))),
        other => {
            match (other.strip_prefix("capture."), other.strip_prefix("key.expected."), other.strip_prefix("body.")) {
                (Some(name), _, _) if !name.is_empty() => no_args(Segment::Capture(name.to_owned())),
                (_, Some(name), _) if !name.is_empty() => {
                    no_args(Segment::Fact(FactName::KeyExpected(Some(name.to_owned()))))
                }
                // `{{body./amount}}`; `{{body.amount}}` reads the same top-level field.
                (_, _, Some(pointer)) if pointer.starts_with('/') => {
                    no_args(Segment::Fact(FactName::Body(pointer.to_owned())))
                }
                (_, _, Some(field)) if !field.is_empty() && !field.contains(['.', '/']) => {
                    no_args(Segment::Fact(FactName::Body(format!("/{field}"))))
                }
                _ => Err(err(format!(
                    "unknown template `{{{{{other}}}}}`: expected one of key, ref, int A B, float A B, \
                 choice ..., uuid, now_ms, bytes N, capture.NAME (in `[projection] until` also \
                 key.acked, key.expected, body./POINTER)"
                ))),
            }
        }
    }
}

fn two_args<'a>(head: &str, args: &[&'a str]) -> Result<[&'a str; 2], String> {
    match args {
        [a, b] => Ok([a, b]),
        _ => Err(format!("`{{{{{head} A B}}}}` takes two arguments, got {}", args.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn render(text: &str) -> String {
        let t = Template::compile(text).expect("compiles");
        let captures = vec![("version".to_owned(), "7".to_owned())];
        let ctx = RenderContext { key: "acct-3", op_ref: "r1.0.9", captures: &captures };
        t.render(&ctx, &mut SmallRng::seed_from_u64(1))
    }

    #[test]
    fn renders_every_expression() {
        assert_eq!(render("/accounts/{{key}}/deposit"), "/accounts/acct-3/deposit");
        assert_eq!(render("{{ ref }}"), "r1.0.9");
        assert_eq!(render("v={{capture.version}}"), "v=7");
        assert_eq!(render("{{capture.other}}"), "");
        assert_eq!(render("{{bytes 40}}").len(), 40);
        let n: i64 = render("{{int 5 7}}").parse().unwrap();
        assert!((5..=7).contains(&n));
        let f = render("{{float 0.5 9.99}}");
        assert_eq!(f.split_once('.').unwrap().1.len(), 2);
        assert!(["a", "b"].contains(&render("{{choice a b}}").as_str()));
        assert_eq!(render("{{uuid}}").len(), 36);
        assert!(render("{{now_ms}}").parse::<u64>().unwrap() > 1_600_000_000_000);
    }

    /// Issue 31: facts render only where allowed, from the lookup.
    #[test]
    fn facts_render_only_in_probe_templates() {
        struct Facts;
        impl CaptureLookup for Facts {
            fn capture(&self, _: &str) -> Option<&str> {
                None
            }
            fn fact(&self, name: &FactName) -> Option<String> {
                Some(name.to_string())
            }
        }
        let t = Template::compile_probe(
            "{{key.acked}} {{key.expected}} {{key.expected.qty}} {{body./a/0}} {{body.amount}}",
        )
        .unwrap();
        let ctx = RenderContext { key: "k", op_ref: "r", captures: &Facts };
        assert_eq!(
            t.render(&ctx, &mut SmallRng::seed_from_u64(1)),
            "{{key.acked}} {{key.expected}} {{key.expected.qty}} {{body./a/0}} {{body./amount}}"
        );
        assert_eq!(t.facts().count(), 5);
        let e = Template::compile("/x/{{key.acked}}").unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(e.message.contains("only `[projection] until`"), "{e}");
        assert!(Template::compile_probe("{{body.}}").is_err());
        assert!(Template::compile_probe("{{key.acked 2}}").is_err());
    }

    #[test]
    fn same_seed_same_rendering() {
        assert_eq!(render("{{int 0 1000000}} {{uuid}}"), render("{{int 0 1000000}} {{uuid}}"));
    }

    #[test]
    fn errors_point_at_the_expression() {
        let e = Template::compile("abc {{int 1}}").unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.message.contains("two arguments"), "{e}");
        assert_eq!(Template::compile("x{{key").unwrap_err().offset, 1);
        assert!(Template::compile("{{nope}}").unwrap_err().message.contains("unknown template"));
        assert!(Template::compile("{{int 9 1}}").is_err());
        assert!(Template::compile("{{float 1 nan}}").is_err());
        assert!(Template::compile("{{float 1 inf}}").is_err());
        assert!(Template::compile("{{float -1e400 1}}").is_err());
    }

    #[test]
    fn issue16_huge_ranges_render() {
        for text in [
            "{{float -1.7976931348623157e308 1.7976931348623157e308}}",
            "{{float 1e308 1.7976931348623157e308}}",
            "{{float -1.7976931348623157e308 -1e308}}",
            "{{float 5 5}}",
            "{{int -9223372036854775808 9223372036854775807}}",
            "{{int 9223372036854775807 9223372036854775807}}",
        ] {
            let t = Template::compile(text).expect("compiles");
            let ctx = RenderContext { key: "k", op_ref: "r", captures: &NoCaptures };
            for seed in 0..200 {
                let out = t.render(&ctx, &mut SmallRng::seed_from_u64(seed));
                let value: f64 = out.parse().unwrap_or_else(|_| panic!("{text} gave {out}"));
                assert!(value.is_finite(), "{text} gave {out}");
            }
        }
    }
}
