//! Score expressions: a small arithmetic language over a service's stats, parsed once
//! (hand-written recursive descent) and evaluated on every heartbeat.
//!
//! Grammar, loosest binding first:
//!
//! ```text
//! expr    := sum (("<" | "<=" | ">" | ">=") sum)*      comparisons give 1 or 0
//! sum     := product (("+" | "-") product)*
//! product := unary (("*" | "/") unary)*
//! unary   := "-" unary | primary
//! primary := number | name | name "(" expr ("," expr)* ")" | "(" expr ")"
//! ```
//!
//! Functions: `root(n, x)` (n-th root), `min(a, b, ...)`, `max(a, b, ...)`,
//! `clamp(x, lo, hi)`, `if(cond, a, b)` (`a` when `cond` is non-zero, only the taken
//! branch is evaluated). Any other name is a stat (`cpu`, `io`, `space`, or whatever
//! key the service sends).

use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// The default expression, for rawx and every type without its own: no score below
/// 5 % free space, else the cube root of cpu idle × io idle × free space, with cpu
/// and io idle counted as at least 1 %. A saturated CPU or disk (every service of a
/// single host saturates together) pushes a score to its floor — rarely chosen —
/// but never out of placement; only a full volume, a lock or silence do that.
pub const DEFAULT_EXPRESSION: &str = "if(space < 5, 0, root(3, max(cpu, 1) * max(io, 1) * space))";

/// Stats every service sends (see `oxio_proto::reporter`).
pub const BASE_STATS: [&str; 3] = ["cpu", "io", "space"];

/// The highest score.
pub const MAX_SCORE: u32 = 100;

/// Longest accepted expression, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

/// Deepest accepted nesting (parentheses, unary minus, function calls).
pub const MAX_DEPTH: usize = 64;

/// Most arguments one function call may take.
pub const MAX_ARGS: usize = 64;

/// Why an expression could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreError {
    /// The text does not follow the grammar.
    #[error("at byte {pos}: expected {expected}, found {found}")]
    Syntax {
        /// Byte offset in the expression.
        pos: usize,
        /// What the parser wanted there.
        expected: String,
        /// What it saw instead.
        found: String,
    },
    /// A call to a function that does not exist.
    #[error("at byte {pos}: unknown function `{name}` (expected root, min, max, clamp or if)")]
    UnknownFunction {
        /// Byte offset of the name.
        pos: usize,
        /// The name used.
        name: String,
    },
    /// A call with the wrong number of arguments.
    #[error("at byte {pos}: `{name}` expects {expected} argument(s), got {got}")]
    Arity {
        /// Byte offset of the name.
        pos: usize,
        /// The function.
        name: String,
        /// What it accepts ("2", "at least 1", ...).
        expected: String,
        /// How many were given.
        got: usize,
    },
    /// The expression is longer or more deeply nested than allowed.
    #[error("at byte {pos}: expression too large (at most {MAX_EXPRESSION_BYTES} bytes and {MAX_DEPTH} levels of nesting)")]
    TooLarge {
        /// Byte offset where the limit was hit.
        pos: usize,
    },
    /// The stats given to `eval` lack a stat the expression reads.
    #[error("stat `{0}` is missing")]
    MissingStat(String),
    /// The expression reads a stat its service type does not send (config time).
    #[error("at byte {pos}: unknown stat `{name}` (known: {known})")]
    UnknownStat {
        /// Byte offset of the stat's name.
        pos: usize,
        /// The stat.
        name: String,
        /// The stats the type sends, comma separated.
        known: String,
    },
}

/// A built-in function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Root,
    Min,
    Max,
    Clamp,
    If,
}

impl Func {
    fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "root" => Func::Root,
            "min" => Func::Min,
            "max" => Func::Max,
            "clamp" => Func::Clamp,
            "if" => Func::If,
            _ => return None,
        })
    }

    /// Checks the argument count; `Err` carries the expected count in words.
    fn check_arity(self, got: usize) -> std::result::Result<(), &'static str> {
        let ok = match self {
            Func::Root => got == 2,
            Func::Min | Func::Max => got >= 1,
            Func::Clamp | Func::If => got == 3,
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            Func::Root => "2",
            Func::Min | Func::Max => "at least 1",
            Func::Clamp | Func::If => "3",
        })
    }
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The parsed tree.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Num(f64),
    /// A stat and the byte offset of its name.
    Stat(String, usize),
    Neg(Box<Node>),
    Bin(BinOp, Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
}

/// A parsed score expression.
#[derive(Clone, PartialEq)]
pub struct Expression {
    source: String,
    root: Node,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expression({:?})", self.source)
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Expression {
    type Err = ScoreError;

    fn from_str(s: &str) -> Result<Self, ScoreError> {
        Expression::parse(s)
    }
}

impl Expression {
    /// Parses `source`; errors name the byte position and what was expected.
    pub fn parse(source: &str) -> Result<Expression, ScoreError> {
        if source.len() > MAX_EXPRESSION_BYTES {
            return Err(ScoreError::TooLarge {
                pos: MAX_EXPRESSION_BYTES,
            });
        }
        let mut parser = Parser {
            src: source,
            pos: 0,
            depth: 0,
        };
        let root = parser.expr()?;
        parser.skip_ws();
        if parser.pos < source.len() {
            return Err(parser.unexpected("an operator or the end of the expression"));
        }
        Ok(Expression {
            source: source.to_string(),
            root,
        })
    }

    /// The text the expression was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every stat name the expression may read, sorted.
    pub fn stat_names(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        collect_stats(&self.root, &mut out);
        out
    }

    /// Fails with [`ScoreError::UnknownStat`] naming the first stat (by position)
    /// the expression reads that is not in `known` (config-time validation).
    pub fn check_stats(&self, known: &[&str]) -> Result<(), ScoreError> {
        let mut uses = Vec::new();
        collect_stat_uses(&self.root, &mut uses);
        uses.sort_by_key(|(_, pos)| *pos);
        match uses.into_iter().find(|(s, _)| !known.contains(s)) {
            Some((name, pos)) => Err(ScoreError::UnknownStat {
                pos,
                name: name.to_string(),
                known: known.join(", "),
            }),
            None => Ok(()),
        }
    }

    /// Evaluates against `stats`. A stat read by the expression but absent from
    /// `stats` is an error naming it. The raw result may be any float.
    pub fn eval(&self, stats: &HashMap<String, f64>) -> Result<f64, ScoreError> {
        eval_node(&self.root, stats)
    }

    /// Evaluates and turns the result into a score: clamped to `0..=100` and rounded
    /// to the nearest integer; a NaN result scores 0.
    pub fn score(&self, stats: &HashMap<String, f64>) -> Result<u32, ScoreError> {
        Ok(to_score(self.eval(stats)?))
    }
}

/// Clamps a raw value to `0..=MAX_SCORE` and rounds it; NaN gives 0.
pub fn to_score(value: f64) -> u32 {
    if value.is_nan() {
        return 0;
    }
    value.clamp(0.0, f64::from(MAX_SCORE)).round() as u32
}

fn collect_stat_uses<'a>(node: &'a Node, out: &mut Vec<(&'a str, usize)>) {
    match node {
        Node::Num(_) => {}
        Node::Stat(name, pos) => out.push((name, *pos)),
        Node::Neg(inner) => collect_stat_uses(inner, out),
        Node::Bin(_, a, b) => {
            collect_stat_uses(a, out);
            collect_stat_uses(b, out);
        }
        Node::Call(_, args) => args.iter().for_each(|a| collect_stat_uses(a, out)),
    }
}

fn collect_stats<'a>(node: &'a Node, out: &mut BTreeSet<&'a str>) {
    match node {
        Node::Num(_) => {}
        Node::Stat(name, _) => {
            out.insert(name);
        }
        Node::Neg(inner) => collect_stats(inner, out),
        Node::Bin(_, a, b) => {
            collect_stats(a, out);
            collect_stats(b, out);
        }
        Node::Call(_, args) => args.iter().for_each(|a| collect_stats(a, out)),
    }
}

fn bool_value(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// n-th root; odd integer roots of negative numbers keep the sign, other negative
/// inputs and `n = 0` give NaN.
fn root(n: f64, x: f64) -> f64 {
    if n == 0.0 {
        return f64::NAN;
    }
    if x >= 0.0 {
        return x.powf(1.0 / n);
    }
    let odd_integer = n.fract() == 0.0 && (n.abs() % 2.0) == 1.0;
    if odd_integer {
        -(-x).powf(1.0 / n)
    } else {
        f64::NAN
    }
}

fn eval_node(node: &Node, stats: &HashMap<String, f64>) -> Result<f64, ScoreError> {
    Ok(match node {
        Node::Num(v) => *v,
        Node::Stat(name, _) => *stats
            .get(name)
            .ok_or_else(|| ScoreError::MissingStat(name.clone()))?,
        Node::Neg(inner) => -eval_node(inner, stats)?,
        Node::Bin(op, a, b) => {
            let (a, b) = (eval_node(a, stats)?, eval_node(b, stats)?);
            match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => a / b,
                BinOp::Lt => bool_value(a < b),
                BinOp::Le => bool_value(a <= b),
                BinOp::Gt => bool_value(a > b),
                BinOp::Ge => bool_value(a >= b),
            }
        }
        Node::Call(func, args) => match func {
            Func::If => {
                // Arity was checked at parse time.
                let cond = eval_node(&args[0], stats)?;
                let taken = if cond != 0.0 && !cond.is_nan() {
                    &args[1]
                } else {
                    &args[2]
                };
                eval_node(taken, stats)?
            }
            Func::Root => root(eval_node(&args[0], stats)?, eval_node(&args[1], stats)?),
            Func::Clamp => {
                let x = eval_node(&args[0], stats)?;
                let lo = eval_node(&args[1], stats)?;
                let hi = eval_node(&args[2], stats)?;
                x.max(lo).min(hi)
            }
            Func::Min | Func::Max => {
                let mut acc: Option<f64> = None;
                for arg in args {
                    let v = eval_node(arg, stats)?;
                    acc = Some(match acc {
                        None => v,
                        Some(a) if *func == Func::Min => a.min(v),
                        Some(a) => a.max(v),
                    });
                }
                acc.unwrap_or(f64::NAN)
            }
        },
    })
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.rest().chars().next()
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn unexpected(&mut self, expected: &str) -> ScoreError {
        self.skip_ws();
        let found = match self.rest().chars().next() {
            None => "end of expression".to_string(),
            Some(c) => format!("`{c}`"),
        };
        ScoreError::Syntax {
            pos: self.pos,
            expected: expected.to_string(),
            found,
        }
    }

    fn enter(&mut self) -> Result<(), ScoreError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ScoreError::TooLarge { pos: self.pos });
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Node, ScoreError> {
        self.enter()?;
        let mut left = self.sum()?;
        loop {
            // Two-character operators first.
            let op = if self.eat("<=") {
                BinOp::Le
            } else if self.eat(">=") {
                BinOp::Ge
            } else if self.eat("<") {
                BinOp::Lt
            } else if self.eat(">") {
                BinOp::Gt
            } else {
                break;
            };
            let right = self.sum()?;
            left = Node::Bin(op, Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn sum(&mut self) -> Result<Node, ScoreError> {
        let mut left = self.product()?;
        loop {
            let op = if self.eat("+") {
                BinOp::Add
            } else if self.eat("-") {
                BinOp::Sub
            } else {
                break;
            };
            let right = self.product()?;
            left = Node::Bin(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn product(&mut self) -> Result<Node, ScoreError> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat("*") {
                BinOp::Mul
            } else if self.eat("/") {
                BinOp::Div
            } else {
                break;
            };
            let right = self.unary()?;
            left = Node::Bin(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, ScoreError> {
        if self.eat("-") {
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Node::Neg(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, ScoreError> {
        const OPERAND: &str = "a number, a stat name, a function call or `(`";
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                let inner = self.expr()?;
                if !self.eat(")") {
                    return Err(self.unexpected("`)`"));
                }
                Ok(inner)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => self.name(),
            _ => Err(self.unexpected(OPERAND)),
        }
    }

    fn number(&mut self) -> Result<Node, ScoreError> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
            end += 1;
        }
        // Optional exponent: e, E, then an optional sign and digits.
        if end < bytes.len() && (bytes[end] == b'e' || bytes[end] == b'E') {
            let mut exp = end + 1;
            if exp < bytes.len() && (bytes[exp] == b'+' || bytes[exp] == b'-') {
                exp += 1;
            }
            if exp < bytes.len() && bytes[exp].is_ascii_digit() {
                while exp < bytes.len() && bytes[exp].is_ascii_digit() {
                    exp += 1;
                }
                end = exp;
            }
        }
        let text = &self.src[start..end];
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => {
                self.pos = end;
                Ok(Node::Num(v))
            }
            _ => Err(ScoreError::Syntax {
                pos: start,
                expected: "a number".to_string(),
                found: format!("`{text}`"),
            }),
        }
    }

    fn name(&mut self) -> Result<Node, ScoreError> {
        let start = self.pos;
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(self.rest().len());
        let name = &self.src[start..start + len];
        self.pos += len;
        if self.peek() != Some('(') {
            return Ok(Node::Stat(name.to_string(), start));
        }
        let func = Func::from_name(name).ok_or_else(|| ScoreError::UnknownFunction {
            pos: start,
            name: name.to_string(),
        })?;
        self.pos += 1; // the '('
        self.enter()?;
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                if args.len() >= MAX_ARGS {
                    return Err(ScoreError::TooLarge { pos: self.pos });
                }
                args.push(self.expr()?);
                if self.eat(",") {
                    continue;
                }
                if self.eat(")") {
                    break;
                }
                return Err(self.unexpected("`,` or `)`"));
            }
        }
        self.depth -= 1;
        func.check_arity(args.len())
            .map_err(|expected| ScoreError::Arity {
                pos: start,
                name: name.to_string(),
                expected: expected.to_string(),
                got: args.len(),
            })?;
        Ok(Node::Call(func, args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(pairs: &[(&str, f64)]) -> HashMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn eval(src: &str) -> f64 {
        Expression::parse(src)
            .unwrap()
            .eval(&HashMap::new())
            .unwrap()
    }

    #[test]
    fn default_expression_values() {
        let e = Expression::parse(DEFAULT_EXPRESSION).unwrap();
        let full = stats(&[("cpu", 100.0), ("io", 100.0), ("space", 100.0)]);
        assert_eq!(e.score(&full).unwrap(), 100);
        // cbrt(8 * 27 * 64) = 2 * 3 * 4 = 24
        let mid = stats(&[("cpu", 8.0), ("io", 27.0), ("space", 64.0)]);
        assert!((e.eval(&mid).unwrap() - 24.0).abs() < 1e-9);
        assert_eq!(e.score(&mid).unwrap(), 24);
        // Under 5 % space: 0 whatever the rest.
        let full_disk = stats(&[("cpu", 100.0), ("io", 100.0), ("space", 4.9)]);
        assert_eq!(e.score(&full_disk).unwrap(), 0);
        let at_limit = stats(&[("cpu", 100.0), ("io", 100.0), ("space", 5.0)]);
        // cbrt(100 * 100 * 5) = 36.84
        assert_eq!(e.score(&at_limit).unwrap(), 37);
        // Saturated cpu and disk: the floor, cbrt(1 * 1 * 100) = 4.64, not 0.
        let busy = stats(&[("cpu", 0.0), ("io", 0.0), ("space", 100.0)]);
        assert_eq!(e.score(&busy).unwrap(), 5);
        let names: Vec<&str> = e.stat_names().into_iter().collect();
        assert_eq!(names, vec!["cpu", "io", "space"]);
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(eval("1 + 2 * 3"), 7.0);
        assert_eq!(eval("(1 + 2) * 3"), 9.0);
        assert_eq!(eval("10 - 4 - 3"), 3.0);
        assert_eq!(eval("24 / 4 / 2"), 3.0);
        assert_eq!(eval("-2 * 3"), -6.0);
        assert_eq!(eval("--2"), 2.0);
        assert_eq!(eval("2 - -3"), 5.0);
        assert_eq!(eval("1 + 2 < 4"), 1.0);
        assert_eq!(eval("1 + 4 < 4"), 0.0);
        assert_eq!(eval("3 <= 3"), 1.0);
        assert_eq!(eval("3 >= 4"), 0.0);
        assert_eq!(eval("4 > 3 * 2"), 0.0);
        assert_eq!(eval("1.5e1 + .5"), 15.5);
    }

    #[test]
    fn functions() {
        assert!((eval("root(2, 81)") - 9.0).abs() < 1e-12);
        assert!((eval("root(3, -27)") + 3.0).abs() < 1e-12);
        assert!(eval("root(2, -4)").is_nan());
        assert_eq!(eval("min(3, 1, 2)"), 1.0);
        assert_eq!(eval("max(3, 1, 2)"), 3.0);
        assert_eq!(eval("min(7)"), 7.0);
        assert_eq!(eval("clamp(150, 0, 100)"), 100.0);
        assert_eq!(eval("clamp(-5, 0, 100)"), 0.0);
        assert_eq!(eval("clamp(42, 0, 100)"), 42.0);
        assert_eq!(eval("if(1, 10, 20)"), 10.0);
        assert_eq!(eval("if(0, 10, 20)"), 20.0);
        assert_eq!(eval("if(2 > 1, 10, 20) + 1"), 11.0);
    }

    #[test]
    fn if_evaluates_only_the_taken_branch() {
        let e = Expression::parse("if(cpu > 50, cpu, missing)").unwrap();
        assert_eq!(e.eval(&stats(&[("cpu", 80.0)])).unwrap(), 80.0);
        assert_eq!(
            e.eval(&stats(&[("cpu", 20.0)])).unwrap_err(),
            ScoreError::MissingStat("missing".into())
        );
    }

    #[test]
    fn score_clamps_and_rounds() {
        assert_eq!(to_score(-3.0), 0);
        assert_eq!(to_score(250.0), 100);
        assert_eq!(to_score(41.5), 42);
        assert_eq!(to_score(41.49), 41);
        assert_eq!(to_score(f64::NAN), 0);
        assert_eq!(to_score(f64::INFINITY), 100);
        let e = Expression::parse("cpu / io").unwrap();
        assert_eq!(e.score(&stats(&[("cpu", 1.0), ("io", 0.0)])).unwrap(), 100);
    }

    #[test]
    fn errors_name_position_and_expectation() {
        match Expression::parse("cpu + * io").unwrap_err() {
            ScoreError::Syntax {
                pos,
                expected,
                found,
            } => {
                assert_eq!(pos, 6);
                assert!(expected.contains("number"), "{expected}");
                assert_eq!(found, "`*`");
            }
            other => panic!("unexpected {other:?}"),
        }
        let e = Expression::parse("(cpu + io").unwrap_err();
        assert_eq!(
            e.to_string(),
            "at byte 9: expected `)`, found end of expression"
        );
        let e = Expression::parse("cpu io").unwrap_err();
        assert!(matches!(e, ScoreError::Syntax { pos: 4, .. }), "{e}");
        let e = Expression::parse("").unwrap_err();
        assert!(matches!(e, ScoreError::Syntax { pos: 0, .. }), "{e}");
        let e = Expression::parse("sqrt(4)").unwrap_err();
        assert_eq!(
            e,
            ScoreError::UnknownFunction {
                pos: 0,
                name: "sqrt".into()
            }
        );
        let e = Expression::parse("1 + root(3)").unwrap_err();
        assert!(matches!(e, ScoreError::Arity { pos: 4, got: 1, .. }), "{e}");
        let e = Expression::parse("min()").unwrap_err();
        assert!(matches!(e, ScoreError::Arity { got: 0, .. }), "{e}");
        let e = Expression::parse("max(1, 2").unwrap_err();
        assert!(e.to_string().contains("`,` or `)`"), "{e}");
        let e = Expression::parse("1 $ 2").unwrap_err();
        assert!(matches!(e, ScoreError::Syntax { pos: 2, .. }), "{e}");
    }

    #[test]
    fn missing_and_unknown_stats_are_named() {
        let e = Expression::parse("cpu * disk_free").unwrap();
        let err = e.eval(&stats(&[("cpu", 1.0)])).unwrap_err();
        assert_eq!(err, ScoreError::MissingStat("disk_free".into()));
        assert_eq!(err.to_string(), "stat `disk_free` is missing");
        let err = e.check_stats(&BASE_STATS).unwrap_err();
        assert_eq!(
            err,
            ScoreError::UnknownStat {
                pos: 6,
                name: "disk_free".into(),
                known: "cpu, io, space".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "at byte 6: unknown stat `disk_free` (known: cpu, io, space)"
        );
        // The first unknown stat by position is named, wherever it sits in the tree.
        let e = Expression::parse("if(space < 5, zeta, root(3, cpu * alpha))").unwrap();
        assert!(matches!(
            e.check_stats(&BASE_STATS).unwrap_err(),
            ScoreError::UnknownStat { pos: 14, ref name, .. } if name == "zeta"
        ));
        assert!(Expression::parse(DEFAULT_EXPRESSION)
            .unwrap()
            .check_stats(&BASE_STATS)
            .is_ok());
    }

    #[test]
    fn limits_are_enforced() {
        let deep = format!(
            "{}1{}",
            "(".repeat(MAX_DEPTH + 5),
            ")".repeat(MAX_DEPTH + 5)
        );
        assert!(matches!(
            Expression::parse(&deep),
            Err(ScoreError::TooLarge { .. })
        ));
        let negs = format!("{}1", "-".repeat(MAX_DEPTH + 5));
        assert!(matches!(
            Expression::parse(&negs),
            Err(ScoreError::TooLarge { .. })
        ));
        let long = "1+".repeat(MAX_EXPRESSION_BYTES);
        assert!(matches!(
            Expression::parse(&long),
            Err(ScoreError::TooLarge { .. })
        ));
        // Moderate nesting still parses.
        let ok = format!("{}1{}", "(".repeat(20), ")".repeat(20));
        assert_eq!(eval(&ok), 1.0);
    }
}
