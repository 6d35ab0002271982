//! Tests of the formatter, `dnnc_syntax::format::format`.
//!
//! - Every `.dnn` file in the repository that parses is formatted idempotently and
//!   only its whitespace changes (checked with a lexer written here, independently of
//!   the formatter's, and by comparing the parsed trees without spans).
//! - The examples and the standard library are fixed points; the `ok` filetests are
//!   fixed points up to a couple of lines.
//! - Before/after cases pin the house style.
//! - Randomly re-spaced corpus files keep those properties.
//! - Text with any diagnostic is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dnnc_syntax::format::{format, FormatError};
use dnnc_testing::Rng;

// ---------------------------------------------------------------------------------
// Helpers

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The UTF-8 `.dnn` files under `dir` (relative to the repository root), recursively.
fn dnn_files(dir: &str) -> Vec<(PathBuf, String)> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for e in entries {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "dnn") {
                out.push(p);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&repo().join(dir), &mut paths);
    paths.sort();
    assert!(!paths.is_empty(), "no .dnn files under {dir}");
    paths
        .into_iter()
        .filter_map(|p| {
            let text = String::from_utf8(std::fs::read(&p).expect("readable")).ok()?;
            Some((p, text))
        })
        .collect()
}

fn parses(text: &str) -> bool {
    dnnc_syntax::parse(&Arc::from("t.dnn"), text)
        .diagnostics
        .is_empty()
}

fn fmt(text: &str) -> String {
    format(text).unwrap_or_else(|e| panic!("cannot format: {e}\n---\n{text}"))
}

/// The parsed tree, printed without spans.
fn tree(text: &str) -> String {
    let parsed = dnnc_syntax::parse(&Arc::from("t.dnn"), text);
    assert!(
        parsed.diagnostics.is_empty(),
        "{:?}\n---\n{text}",
        parsed.diagnostics
    );
    let debug = std::format!("{:?}", parsed.module);
    let mut out = String::with_capacity(debug.len());
    let mut rest = debug.as_str();
    while let Some(i) = rest.find("Span { start: ") {
        out.push_str(&rest[..i]);
        let close = rest[i..].find('}').expect("span closes");
        out.push_str("Span");
        rest = &rest[i + close + 1..];
    }
    out.push_str(rest);
    out
}

/// A lexer for the checks, independent of the formatter's: comments keep their text
/// without trailing whitespace (and with `\r\n` read as `\n`); whitespace is dropped.
fn tokens(text: &str) -> Vec<String> {
    const MULTI: &[&str] = &[
        "...", "..", "::", "|>", "->", "**", "==", "!=", "<=", ">=", "&&", "||",
    ];
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i = (i + 2).min(chars.len());
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' && chars[i] != '\n' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(chars.len());
        } else if c.is_ascii_digit() {
            while i < chars.len() && (word(chars[i]) || chars[i] == '.') {
                let exp =
                    matches!(chars[i], 'e' | 'E') && matches!(chars.get(i + 1), Some('+' | '-'));
                let dot_ok = chars[i] != '.' || chars.get(i + 1).is_some_and(char::is_ascii_digit);
                if !dot_ok {
                    break;
                }
                i += if exp { 2 } else { 1 };
            }
        } else if word(c) {
            while i < chars.len() && word(chars[i]) {
                i += 1;
            }
        } else {
            let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
            i += MULTI
                .iter()
                .find(|m| rest.starts_with(**m))
                .map_or(1, |m| m.len());
        }
        let tok: String = chars[start..i].iter().collect();
        let tok = tok
            .split('\n')
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n");
        out.push(tok);
    }
    out
}

/// `output` is what formatting `input` produced: it is formatted already, it has the
/// same tokens and tree as `input`, and it follows the basic layout rules.
fn assert_well_formatted(name: &str, input: &str, output: &str) {
    assert_eq!(fmt(output), output, "{name}: formatting is not idempotent");
    assert_eq!(tokens(input), tokens(output), "{name}: tokens changed");
    assert_eq!(tree(input), tree(output), "{name}: the parse tree changed");
    assert!(!output.contains('\r'), "{name}: CR in the output");
    assert!(
        !output.contains("\n\n\n"),
        "{name}: two blank lines in a row"
    );
    assert!(!output.starts_with('\n'), "{name}: leading blank line");
    assert!(output.is_empty() || output.ends_with('\n') && !output.ends_with("\n\n"));
    for line in output.lines() {
        assert_eq!(line, line.trim_end(), "{name}: trailing whitespace");
        let indent = line.len() - line.trim_start().len();
        assert!(!line[..indent].contains('\t'), "{name}: tab in indentation");
    }
}

/// Formats `input`, compares with `expected` and checks the output's properties. Both
/// strings lose one leading newline, so that cases can be written as raw strings.
fn check(input: &str, expected: &str) {
    let input = input.strip_prefix('\n').unwrap_or(input);
    let expected = expected.strip_prefix('\n').unwrap_or(expected);
    let output = fmt(input);
    assert_eq!(
        output, expected,
        "\n--- got:\n{output}\n--- expected:\n{expected}"
    );
    assert_well_formatted("case", input, &output);
}

fn refused(input: &str) -> FormatError {
    let err = format(input).expect_err("broken input must be refused");
    assert!(!err.message.is_empty());
    assert!(err.offset <= input.len(), "{err:?} is outside the input");
    err
}

// ---------------------------------------------------------------------------------
// The repository's files

#[test]
fn examples_and_stdlib_are_fixed_points() {
    for dir in ["examples", "stdlib"] {
        for (path, text) in dnn_files(dir) {
            let out = fmt(&text);
            assert_eq!(out, text, "{} is not a fixed point", path.display());
        }
    }
}

#[test]
fn ok_filetests_are_nearly_fixed_points() {
    for (path, text) in dnn_files("compiler/driver/tests/filetests/ok") {
        let out = fmt(&text);
        let lf = text.replace("\r\n", "\n");
        let a: Vec<&str> = lf.lines().collect();
        let b: Vec<&str> = out.lines().collect();
        let changed = a.len().abs_diff(b.len()) + a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert!(
            changed <= 2,
            "{} changes in {changed} lines:\n{out}",
            path.display()
        );
    }
}

#[test]
fn every_file_is_formatted_idempotently_and_only_in_whitespace() {
    let mut formatted = 0;
    let mut refused_files = 0;
    for dir in ["examples", "stdlib", "compiler/driver/tests/filetests"] {
        for (path, text) in dnn_files(dir) {
            let name = path.display().to_string();
            if parses(&text) {
                assert_well_formatted(&name, &text, &fmt(&text));
                formatted += 1;
            } else {
                refused(&text);
                refused_files += 1;
            }
        }
    }
    assert!(formatted >= 30, "only {formatted} files formatted");
    assert!(refused_files > 0, "the err filetests hold syntax errors");
}

/// Rewrites every gap between tokens at random: 0–3 spaces or a tab inside a line;
/// extra blank lines and a random indentation across lines; CRLF for some files.
/// Comments and strings are left alone.
fn respace(text: &str, rng: &mut Rng) -> String {
    let crlf = rng.below(4) == 0;
    let mut out = String::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b' ' || c == b'\t' || c == b'\r' || c == b'\n' {
            let start = i;
            while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
                i += 1;
            }
            let newlines = text[start..i].matches('\n').count();
            if newlines == 0 {
                // No gap between two word characters, which would merge two tokens.
                let glued = out.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                    && text[i..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
                let gap = match rng.below(6) {
                    0 if !glued => "",
                    0 => " ",
                    1 => "\t",
                    2 | 3 => " ",
                    4 => "  ",
                    _ => "   ",
                };
                out.push_str(gap);
            } else {
                let nl = if crlf { "\r\n" } else { "\n" };
                for _ in 0..newlines + rng.below(2) {
                    out.push_str(nl);
                }
                out.extend(std::iter::repeat_n(' ', rng.below(13)));
            }
            continue;
        }
        // Copy one token-ish run: a comment or string whole, anything else up to the
        // next whitespace.
        let rest = &text[i..];
        let len = if rest.starts_with("//") {
            rest.find('\n').unwrap_or(rest.len())
        } else if let Some(body) = rest.strip_prefix("/*") {
            body.find("*/").map_or(rest.len(), |j| j + 4)
        } else if c == b'"' {
            let mut j = 1;
            while j < rest.len() && rest.as_bytes()[j] != b'"' && rest.as_bytes()[j] != b'\n' {
                j += if rest.as_bytes()[j] == b'\\' { 2 } else { 1 };
            }
            (j + 1).min(rest.len())
        } else {
            let mut j = 0;
            while j < rest.len()
                && !matches!(rest.as_bytes()[j], b' ' | b'\t' | b'\r' | b'\n' | b'"')
                && !rest[j..].starts_with("//")
                && !rest[j..].starts_with("/*")
            {
                j += rest[j..].chars().next().map_or(1, char::len_utf8);
            }
            j.max(1)
        };
        let len = (len..=rest.len())
            .find(|&l| rest.is_char_boundary(l))
            .unwrap_or(rest.len());
        out.push_str(&rest[..len]);
        i += len;
    }
    out
}

#[test]
fn respaced_files_keep_every_property() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut tried = 0;
    for dir in ["examples", "stdlib", "compiler/driver/tests/filetests/ok"] {
        for (path, text) in dnn_files(dir) {
            for round in 0..12 {
                let messy = respace(&text, &mut rng);
                if !parses(&messy) {
                    // A removed space merged two tokens, or a newline moved a `(`.
                    refused(&messy);
                    continue;
                }
                let name = std::format!("{} (round {round})", path.display());
                assert_well_formatted(&name, &messy, &fmt(&messy));
                tried += 1;
            }
        }
    }
    assert!(tried > 100, "only {tried} respaced files parsed");
}

// ---------------------------------------------------------------------------------
// Before and after

#[test]
fn messy_spacing() {
    check(
        r#"
use std::nn::{ Dense,relu ,gelu}
layer   Dense2( inp:Int,out : Int,bias:Bool=true ){
param W:[inp,out]=glorot_uniform
param b : [ out ] = zeros
    fn forward( x:[B,inp] )->[B,out]{
if bias{x@W+b}else{ x@W }
}
}
"#,
        r#"
use std::nn::{Dense, relu, gelu}

layer Dense2(inp: Int, out: Int, bias: Bool = true) {
    param W: [inp, out] = glorot_uniform
    param b: [out] = zeros
    fn forward(x: [B, inp]) -> [B, out] {
        if bias { x @ W + b } else { x @ W }
    }
}
"#,
    );
}

#[test]
fn operators_indexing_and_calls() {
    check(
        r#"
fn ops(x:[..S,N],y:[N])->[..S,N]{
    let a=-x+ - y*2**-1
    let b = !(x>y)&&x<=y||x!=y
    let c=x[ : ,1:3]+x[...,-1]+x[::2]+x[ -3 : ]+x[i+1:]+[1,2][0]
    let d=mean( x ,axis=-1 ,keepdims=true )|>relu|>f( 2 ) . field
    let (p,q):(f32,i32[N])=(a %b,-(-a)- - a)
    let t = (x,)
    a+b+c+d
}
"#,
        r#"
fn ops(x: [..S, N], y: [N]) -> [..S, N] {
    let a = -x + -y * 2 ** -1
    let b = !(x > y) && x <= y || x != y
    let c = x[:, 1:3] + x[..., -1] + x[::2] + x[-3:] + x[i + 1:] + [1, 2][0]
    let d = mean(x, axis = -1, keepdims = true) |> relu |> f(2).field
    let (p, q): (f32, i32[N]) = (a % b, -(-a) - -a)
    let t = (x,)
    a + b + c + d
}
"#,
    );
}

#[test]
fn comments_everywhere() {
    check(
        concat!(
            "//! Module doc.\n",
            "/* a block comment */ use a::b // after use\n",
            "/// Doc on f,\n",
            "/// two lines.   \n",
            "fn f(/* c0 */ x /* c1 */:[N] , // after comma\n",
            "     y: [N]) /* c2 */ -> [N] {  // after brace\n",
            "        // leading\n",
            "    let /* a */ z /* b */ = /* c */ x[ /* d */ 0:] // e\n",
            "  /* own line */\n",
            "    z//last\n",
            "    // before close\n",
            "} // after close\n",
            "// trailing line comment\n",
            "/* trailing\n",
            "   block */\n",
            "\n",
            "// end of file without a newline",
        ),
        r#"
//! Module doc.
/* a block comment */ use a::b // after use

/// Doc on f,
/// two lines.
fn f(/* c0 */ x /* c1 */: [N], // after comma
     y: [N]) /* c2 */ -> [N] { // after brace
    // leading
    let /* a */ z /* b */ = /* c */ x[/* d */ 0:] // e
    /* own line */
    z //last
    // before close
} // after close
// trailing line comment
/* trailing
   block */

// end of file without a newline
"#,
    );
}

#[test]
fn nested_blocks_and_blank_lines_inside_them() {
    check(
        r#"
fn nest(x: [N], a: Bool, b: Bool) -> [N] {

        if a {
    if b { x }
                else {

            -x

        }
    }
  else { scan(t in x, h = x) {h+t} }

}
train M on d {


      model G = Gen()
    step s {
   let l = loss(G(x))
 update G , D with adam(lr = 1e-3)
    }
}
layer Empty { }
"#,
        r#"
fn nest(x: [N], a: Bool, b: Bool) -> [N] {
    if a {
        if b { x }
        else {
            -x
        }
    }
    else { scan(t in x, h = x) { h + t } }
}

train M on d {
    model G = Gen()
    step s {
        let l = loss(G(x))
        update G, D with adam(lr = 1e-3)
    }
}

layer Empty {}
"#,
    );
}

#[test]
fn multi_line_brackets() {
    check(
        r#"
dataset d {
    train = (image: idx("a.gz") / 255.0 |> flatten,
      label: idx("b.gz"))
    test  = (image: idx("c.gz") / 255.0 |> flatten,
             label: idx("d.gz"))
}
fn calls(x: [N]) -> [N] {
    let y = combine(
            x,
               f(x,
                 g(
                x)),
    )
    let z = [1,
      2, 3]
    concat([y,
            z], axis = 0)
}
fn header(a: [N],
          b: [N]) -> [N] {
        a + b
}
layer L(
  /// doc
  n: Int,
      m: Int = 2,
) {
    fc = Dense(n, m)
}
use std::activations::{
  relu,
      gelu,
}
"#,
        r#"
dataset d {
    train = (image: idx("a.gz") / 255.0 |> flatten,
        label: idx("b.gz"))
    test  = (image: idx("c.gz") / 255.0 |> flatten,
             label: idx("d.gz"))
}

fn calls(x: [N]) -> [N] {
    let y = combine(
        x,
        f(x,
          g(
              x)),
    )
    let z = [1,
        2, 3]
    concat([y,
            z], axis = 0)
}

fn header(a: [N],
          b: [N]) -> [N] {
    a + b
}

layer L(
    /// doc
    n: Int,
    m: Int = 2,
) {
    fc = Dense(n, m)
}

use std::activations::{
    relu,
    gelu,
}
"#,
    );
}

#[test]
fn continuation_lines() {
    check(
        r#"
fn pipes(x: [N]) -> [N] {
    let y = x
    |> f
      |> g
        // between pipes
    |> h
    let z = y +
    y *
        2.0
    let w = z
    - 1.0
    w
    . field
}
fn arrow(x: [N])
-> [N] {
x
}
fn arrow_last(x: [N]) ->
[N] {
x
}
"#,
        r#"
fn pipes(x: [N]) -> [N] {
    let y = x
        |> f
        |> g
        // between pipes
        |> h
    let z = y +
        y *
        2.0
    let w = z
        - 1.0
    w
        .field
}

fn arrow(x: [N])
    -> [N] {
    x
}

fn arrow_last(x: [N]) ->
    [N] {
    x
}
"#,
    );
}

#[test]
fn blank_lines_between_declarations() {
    check(
        "\n\n\nuse a::b\nuse a::c\n\n\nuse a::d\nfn f(x: [N]) -> [N] { x }\nfn g(x: [N]) -> [N] {\n\n\n\n    let y = x\n\n\n\n    y\n\n\n}\n/// h doc\nfn h(x: [N]) -> [N] { x } fn k(x: [N]) -> [N] { x }\nuse z::y; use z::w\n// a remark\nmodel M {\n    fc = Dense(1, 1)\n}\n\n\n\n",
        r#"
use a::b
use a::c

use a::d

fn f(x: [N]) -> [N] { x }

fn g(x: [N]) -> [N] {
    let y = x

    y
}

/// h doc
fn h(x: [N]) -> [N] { x }

fn k(x: [N]) -> [N] { x }

use z::y;
use z::w

// a remark
model M {
    fc = Dense(1, 1)
}
"#,
    );
}

#[test]
fn crlf_becomes_lf() {
    check(
        "// CRLF  \r\nfn f(x: [N]) -> [N] {\r\n    /* two  \r\n       lines */\r\n    let y = x  // c  \r\n\r\n\r\n    y\r\n}\r\n",
        "// CRLF\nfn f(x: [N]) -> [N] {\n    /* two\n       lines */\n    let y = x // c\n\n    y\n}\n",
    );
}

#[test]
fn aligned_equals_and_comments_stay_aligned() {
    check(
        r#"
model M {
    fc1   = Dense(1, 2)
    fc2   = Dense(2, 2)
    head  = Dense(2, 3)
    other    = Dense(3, 3)
    fn forward(x: [B, 1]) -> [B, 3] {
        let a  = x * 2.0      // first
        let bb = a + 1.0      // second
        let ccc = bb          // third
        ccc |> fc1    // alone
    }
}
train M on d {
    batch      = 1
    // comment lines do not break the alignment
    let logits = model(x)
    loss       = cross_entropy(logits,
                               y)

    epochs = 2
    seed    = 3
}
"#,
        r#"
model M {
    fc1  = Dense(1, 2)
    fc2  = Dense(2, 2)
    head = Dense(2, 3)
    other = Dense(3, 3)
    fn forward(x: [B, 1]) -> [B, 3] {
        let a  = x * 2.0      // first
        let bb = a + 1.0      // second
        let ccc = bb          // third
        ccc |> fc1 // alone
    }
}

train M on d {
    batch      = 1
    // comment lines do not break the alignment
    let logits = model(x)
    loss       = cross_entropy(logits,
                               y)

    epochs = 2
    seed = 3
}
"#,
    );
}

#[test]
fn odd_corners() {
    // A lone CR is whitespace; `: :` stays apart (`::` is another token); so does `- -`.
    check(
        "fn f(x: [N]) -> [N] {\r x[: :2] + - - x+-x }\n",
        "fn f(x: [N]) -> [N] { x[: :2] + - -x + -x }\n",
    );
    // Comment markers inside strings, non-ASCII text, tabs for indentation.
    check(
        "fn f(x: [N]) -> [N] {\n\tlet s = \"a // b /* c */ ünï\"   // ✓ ü\n\t\tx }\n",
        "fn f(x: [N]) -> [N] {\n    let s = \"a // b /* c */ ünï\" // ✓ ü\n    x }\n",
    );
    check(
        "use a::{b,}\nuse c::{ }\nuse d::*;use e::f\n",
        "use a::{b,}\nuse c::{}\nuse d::*;\nuse e::f\n",
    );
    check(
        "train M on d { step s { update a with -x } }\n",
        "train M on d { step s { update a with -x } }\n",
    );
}

#[test]
fn empty_and_comment_only_files() {
    check("", "");
    check("\n\n   \n\t\n", "");
    check("// only a comment", "// only a comment\n");
    check(
        "\n\n/* a\n   b */  \n\n\n//! c\n\n",
        "/* a\n   b */\n\n//! c\n",
    );
}

#[test]
fn a_formatted_file_is_returned_unchanged() {
    let text = "use std::nn::Dense\n\n/// Doc.\nmodel M {\n    fc = Dense(1, 1)\n\n    fn forward(x: [B, 1]) -> [B, 1] {\n        fc(x)\n    }\n}\n";
    assert_eq!(fmt(text), text);
}

// ---------------------------------------------------------------------------------
// Refusal

#[test]
fn broken_input_is_refused() {
    let e = refused("fn f(x: [N]) -> [N] {\n    x\n");
    assert!(e.message.contains("unclosed"), "{e}");
    assert_eq!(e.offset, 20);

    let e = refused("fn f(x: [N]) -> [N] { \"abc }\n");
    assert!(e.message.contains("string"), "{e}");

    refused("fn f(x: [N]) -> [N] { x ) }\n");
    refused("fn f(x: [N]) -> [N] { x + }\n");
    refused("fn f(x: [N]) -> [N] { x } /* never closed\n");
    refused("fn f(x: [N]) -> [N] { x\u{1}}\n");
    refused("layer L { param }\n");
}

#[test]
fn one_broken_declaration_refuses_the_whole_file() {
    let text = "fn ok(x: [N]) -> [N] {   x }\n\nfn bad(x: [N]) -> [N] { let = 1 }\n";
    let e = refused(text);
    assert!(e.offset >= text.find("fn bad").unwrap(), "{e}");
}
