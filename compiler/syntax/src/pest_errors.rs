//! Turns pest's errors into rustc-style diagnostics: "expected `)`, found `foo`".

use std::sync::Arc;

use dnnc_diagnostics::{codes, Diagnostic, Span};
use pest::error::{Error, ErrorVariant, InputLocation};

use crate::build::Rule;

/// Converts a pest error on a slice that starts at byte `base` of the file.
pub(crate) fn convert(file: &Arc<str>, text: &str, base: usize, e: &Error<Rule>) -> Diagnostic {
    let at = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let found = found_token(text, at);
    let at = at.min(text.len());
    let end = (at + found.len().max(1)).min(text.len());
    let span = Span::new(base + at, base + end);
    match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut expected: Vec<&str> = positives.iter().filter_map(|r| describe(*r)).collect();
            expected.sort_unstable();
            expected.dedup();
            let expected = match expected.as_slice() {
                [] => "something else".to_string(),
                [one] => one.to_string(),
                [init @ .., last] => format!("{}, or {}", init.join(", "), last),
            };
            let found_text = if found.is_empty() {
                "end of declaration".to_string()
            } else {
                format!("`{found}`")
            };
            Diagnostic::error(
                codes::SYNTAX,
                file,
                span,
                format!("expected {expected}, found {found_text}"),
            )
            .with_label(format!("expected {expected}"))
        }
        ErrorVariant::CustomError { message } if message.contains("limit") => Diagnostic::error(
            codes::NESTING_TOO_DEEP,
            file,
            span,
            "declaration nested too deeply to parse",
        )
        .with_label("parsing gave up here")
        .with_help("split the expression with `let` bindings"),
        ErrorVariant::CustomError { message } => {
            Diagnostic::error(codes::SYNTAX, file, span, message.to_lowercase())
        }
    }
}

/// The token at `at`: a word, or a single character.
fn found_token(text: &str, at: usize) -> &str {
    let rest = text.get(at..).unwrap_or("");
    let word_len = rest
        .char_indices()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '_')
        .last()
        .map_or(0, |(i, c)| i + c.len_utf8());
    if word_len > 0 {
        &rest[..word_len]
    } else {
        let n = rest.chars().next().map_or(0, char::len_utf8);
        &rest[..n]
    }
}

/// How a rule reads in "expected ..." messages; `None` for rules not worth naming.
fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::ident => "an identifier",
        Rule::int | Rule::float => "a number",
        Rule::string => "a string",
        Rule::expr
        | Rule::expr_no_block
        | Rule::primary
        | Rule::pipe_expr
        | Rule::or_expr
        | Rule::and_expr
        | Rule::cmp_expr
        | Rule::add_expr
        | Rule::mul_expr
        | Rule::unary_expr
        | Rule::unary_op
        | Rule::pow_expr
        | Rule::postfix_expr
        | Rule::if_expr
        | Rule::scan_expr
        | Rule::list_expr
        | Rule::kw_true
        | Rule::kw_false => "an expression",
        Rule::type_expr | Rule::tensor_type | Rule::named_type | Rule::tuple_type => "a type",
        Rule::item => "a declaration (`use`, `layer`, `model`, `fn`, `dataset` or `train`)",
        Rule::member => "a member (`param`, `fn` or `name = Layer(...)`)",
        Rule::param_decl => "`param`",
        Rule::fn_def => "`fn`",
        Rule::sub_layer => "a sub-layer binding",
        Rule::block => "`{`",
        Rule::hparams | Rule::call_args | Rule::paren_expr => "`(`",
        Rule::hparam => "a hyperparameter",
        Rule::fn_param => "a parameter",
        Rule::dim | Rule::dim_pack => "a dimension",
        Rule::split => "a split (`train = (...)`)",
        Rule::record_field => "a field (`name: expr`)",
        Rule::train_item => "a train field",
        Rule::step_item => "a step field",
        Rule::field => "`name = value`",
        Rule::let_stmt => "`let`",
        Rule::pattern => "a pattern",
        Rule::arg => "an argument",
        Rule::index_item | Rule::slice => "an index",
        Rule::use_group => "`{`",
        Rule::use_glob => "`*`",
        Rule::path => "a module path",
        Rule::from_clause => "`from`",
        Rule::frozen => "`frozen`",
        Rule::kw_on => "`on`",
        Rule::kw_in => "`in`",
        Rule::kw_with => "`with`",
        Rule::kw_else => "`else`",
        Rule::postfix | Rule::index_suffix | Rule::field_suffix => return None,
        Rule::op_or | Rule::op_and | Rule::cmp_op | Rule::add_op | Rule::mul_op | Rule::op_pow => {
            "an operator"
        }
        Rule::EOI => "end of declaration",
        _ => {
            if std::env::var_os("DNNC_DEBUG_PEST").is_some() {
                eprintln!("undescribed rule {rule:?}");
            }
            return None;
        }
    })
}
