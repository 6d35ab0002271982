//! Turns pest's parse tree for one declaration into AST nodes.
//!
//! The grammar guarantees each node's shape, so the builder walks children by rule.
//! It also enforces limits that keep later recursive passes safe (nesting depth) and
//! checks literals (integers that do not fit in 64 bits, floats that overflow).

use std::sync::Arc;

use dnnc_diagnostics::{codes, Diagnostic, Span};
use pest::iterators::Pair;
use pest::Parser;

use crate::ast::*;
use crate::pest_errors;

#[derive(pest_derive::Parser)]
#[grammar = "dnn.pest"]
pub(crate) struct DnnParser;

/// Deepest expression tree the builder produces; deeper input is an error.
const MAX_EXPR_DEPTH: usize = 400;

/// Parses one declaration; `base` is the slice's offset in the file.
pub(crate) fn parse_item(
    file: &Arc<str>,
    text: &str,
    base: usize,
    diags: &mut Vec<Diagnostic>,
) -> Option<Item> {
    match DnnParser::parse(Rule::item_only, text) {
        Ok(mut pairs) => {
            let item_only = pairs.next()?;
            let item = item_only.into_inner().find(|p| p.as_rule() == Rule::item)?;
            let mut b = Builder {
                file,
                text,
                base,
                diags,
                depth: 0,
                reported_too_deep: false,
            };
            Some(b.item(item))
        }
        Err(e) => {
            diags.push(pest_errors::convert(file, text, base, &e));
            None
        }
    }
}

/// A placeholder for a declaration that did not parse, keeping its name if readable.
pub(crate) fn error_item(text: &str, span: Span) -> Item {
    let mut words = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let code = line.split("//").next().unwrap_or("");
        let mut i = 0;
        let bytes = code.as_bytes();
        while i < bytes.len() && words.len() < 2 {
            if bytes[i].is_ascii_alphabetic() || bytes[i] == b'_' {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                words.push((&code[start..i], offset + start));
            } else if !bytes[i].is_ascii_whitespace() {
                break;
            } else {
                i += 1;
            }
        }
        if !words.is_empty() {
            break;
        }
        offset += line.len();
    }
    let name = match words.as_slice() {
        [(kw, _), (name, at)] if ["layer", "model", "fn", "dataset"].contains(kw) => Some(Name {
            text: name.to_string(),
            span: Span::new(
                span.start as usize + at,
                span.start as usize + at + name.len(),
            ),
        }),
        _ => None,
    };
    Item {
        doc: None,
        kind: ItemKind::Error { name },
        span,
    }
}

struct Builder<'a> {
    file: &'a Arc<str>,
    /// The declaration's text; spans inside it are offset by `base`.
    text: &'a str,
    base: usize,
    diags: &'a mut Vec<Diagnostic>,
    /// Levels of expression tree above the node being built.
    depth: usize,
    reported_too_deep: bool,
}

fn is_trivia(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_use
            | Rule::kw_from
            | Rule::kw_at
            | Rule::kw_fn
            | Rule::kw_dataset
            | Rule::kw_train
            | Rule::kw_on
            | Rule::kw_model
            | Rule::kw_step
            | Rule::kw_update
            | Rule::kw_with
            | Rule::kw_let
            | Rule::kw_if
            | Rule::kw_else
            | Rule::kw_scan
            | Rule::kw_in
            | Rule::EOI
    )
}

/// The children of `pair` that carry meaning (keywords dropped).
fn kids(pair: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    pair.into_inner().filter(|p| !is_trivia(p.as_rule()))
}

impl Builder<'_> {
    /// The pair's span without trailing whitespace and comments, which pest includes
    /// when a rule ends in an optional part that did not match.
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        let len = significant_len(s.as_str());
        Span::new(self.base + s.start(), self.base + s.start() + len)
    }

    /// The `///` lines directly above `pair`, without the slashes.
    fn doc_before(&self, pair: &Pair<'_, Rule>) -> Option<String> {
        let before = &self.text[..pair.as_span().start()];
        let mut lines: Vec<&str> = before.split('\n').collect();
        // The node's own line up to the node must be blank.
        let own = lines.pop().unwrap_or("");
        if !own.trim().is_empty() {
            return None;
        }
        let mut docs = Vec::new();
        for l in lines.iter().rev() {
            match l.trim_start().strip_prefix("///") {
                Some(rest) if !rest.starts_with('/') => docs.push(doc_text(rest)),
                _ => break,
            }
        }
        docs.reverse();
        join_doc(docs)
    }

    fn name(&self, pair: Pair<'_, Rule>) -> Name {
        debug_assert_eq!(pair.as_rule(), Rule::ident);
        Name {
            text: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn item(&mut self, pair: Pair<'_, Rule>) -> Item {
        let span = self.span(&pair);
        let doc = self.doc_before(&pair);
        let mut kind = ItemKind::Error { name: None };
        for p in kids(pair) {
            match p.as_rule() {
                Rule::use_decl => kind = ItemKind::Use(self.use_decl(p)),
                Rule::layer_def => kind = ItemKind::Layer(self.layer_def(p)),
                Rule::fn_def => kind = ItemKind::Fn(self.fn_def(p)),
                Rule::dataset_def => kind = ItemKind::Dataset(self.dataset_def(p)),
                Rule::train_def => kind = ItemKind::Train(self.train_def(p)),
                r => unreachable!("item child {r:?}"),
            }
        }
        Item { doc, kind, span }
    }

    fn use_decl(&mut self, pair: Pair<'_, Rule>) -> UseDecl {
        let mut path = Vec::new();
        let mut imports = None;
        for p in kids(pair) {
            match p.as_rule() {
                Rule::path => path = p.into_inner().map(|n| self.name(n)).collect(),
                Rule::use_group => {
                    imports = Some(UseImports::Names(
                        p.into_inner().map(|n| self.name(n)).collect(),
                    ))
                }
                Rule::use_glob => imports = Some(UseImports::Glob(self.span(&p))),
                r => unreachable!("use child {r:?}"),
            }
        }
        let imports = match imports {
            Some(i) => i,
            // `use std::nn::Dense`: the last segment is the imported name.
            None => {
                let last = if path.len() > 1 { path.pop() } else { None };
                UseImports::Names(last.into_iter().collect())
            }
        };
        UseDecl { path, imports }
    }

    fn layer_def(&mut self, pair: Pair<'_, Rule>) -> LayerDef {
        let mut it = kids(pair);
        let is_model = it.next().is_some_and(|k| k.as_str().starts_with("model"));
        let name = self.name(it.next().expect("layer name"));
        let mut hparams = Vec::new();
        let mut members = Vec::new();
        for p in it {
            match p.as_rule() {
                Rule::hparams => {
                    for h in p.into_inner() {
                        hparams.push(self.hparam(h));
                    }
                }
                Rule::member => members.push(self.member(p)),
                r => unreachable!("layer child {r:?}"),
            }
        }
        LayerDef {
            is_model,
            name,
            hparams,
            members,
        }
    }

    fn hparam(&mut self, pair: Pair<'_, Rule>) -> HParam {
        let doc = self.doc_before(&pair);
        let mut names = Vec::new();
        let mut default = None;
        for p in kids(pair) {
            match p.as_rule() {
                Rule::ident => names.push(self.name(p)),
                Rule::expr => default = Some(self.expr(p)),
                r => unreachable!("hparam child {r:?}"),
            }
        }
        let ty = names.pop().expect("hparam type");
        let name = names.pop().expect("hparam name");
        HParam {
            doc,
            name,
            ty,
            default,
        }
    }

    fn member(&mut self, pair: Pair<'_, Rule>) -> Member {
        let span = self.span(&pair);
        let doc = self.doc_before(&pair);
        let mut kind = None;
        for p in kids(pair) {
            match p.as_rule() {
                Rule::param_decl => {
                    let mut it = kids(p);
                    let buffer = it.next().expect("param keyword").as_str() == "buffer";
                    let name = self.name(it.next().expect("param name"));
                    let ty = self.type_expr(it.next().expect("param type"));
                    let init = self.expr(it.next().expect("param init"));
                    let frozen = it.next().map(|f| self.span(&f));
                    kind = Some(MemberKind::Param {
                        name,
                        ty,
                        init,
                        frozen,
                        buffer,
                    });
                }
                Rule::fn_def => kind = Some(MemberKind::Fn(self.fn_def(p))),
                Rule::sub_layer => kind = Some(MemberKind::SubLayer(self.binding(p))),
                r => unreachable!("member child {r:?}"),
            }
        }
        Member {
            doc,
            kind: kind.expect("member kind"),
            span,
        }
    }

    fn binding(&mut self, pair: Pair<'_, Rule>) -> Binding {
        let mut it = kids(pair);
        let name = self.name(it.next().expect("binding name"));
        let value = self.expr(it.next().expect("binding value"));
        let mut from = None;
        let mut at = None;
        let mut frozen = None;
        for p in it {
            match p.as_rule() {
                Rule::from_clause => {
                    let mut strings = kids(p);
                    let s = strings.next().expect("from string");
                    from = Some(self.str_lit(s));
                    at = strings.next().map(|s| self.str_lit(s));
                }
                Rule::frozen => frozen = Some(self.span(&p)),
                r => unreachable!("binding child {r:?}"),
            }
        }
        Binding {
            name,
            value,
            from,
            at,
            frozen,
        }
    }

    fn str_lit(&mut self, pair: Pair<'_, Rule>) -> StrLit {
        let span = self.span(&pair);
        let inner = pair.into_inner().next().map_or("", |p| p.as_str());
        let (value, bad) = unescape(inner);
        if let Some((at, c)) = bad {
            // `at` is relative to the string's contents, after the opening quote.
            let start = span.start as usize + 1 + at;
            self.diags.push(
                Diagnostic::error(
                    codes::BAD_ESCAPE,
                    self.file,
                    Span::new(start, start + 1 + c.len_utf8()),
                    format!("unknown escape sequence `\\{c}`"),
                )
                .with_label("not an escape")
                .with_help("the escapes are `\\n`, `\\t`, `\\r`, `\\\"` and `\\\\`"),
            );
        }
        StrLit { value, span }
    }

    fn fn_def(&mut self, pair: Pair<'_, Rule>) -> FnDef {
        let span = self.span(&pair);
        let mut it = kids(pair);
        let name = self.name(it.next().expect("fn name"));
        let mut params = Vec::new();
        let mut ret = None;
        let mut body = None;
        for p in it {
            match p.as_rule() {
                Rule::fn_param => {
                    let mut pi = kids(p);
                    let name = self.name(pi.next().expect("param name"));
                    let ty = self.type_expr(pi.next().expect("param type"));
                    let default = pi.next().map(|d| self.expr(d));
                    params.push(FnParam { name, ty, default });
                }
                Rule::type_expr => ret = Some(self.type_expr(p)),
                Rule::block => body = Some(self.block(p)),
                r => unreachable!("fn child {r:?}"),
            }
        }
        FnDef {
            name,
            params,
            ret,
            body: body.expect("fn body"),
            span,
        }
    }

    fn type_expr(&mut self, pair: Pair<'_, Rule>) -> TypeExpr {
        let span = self.span(&pair);
        let inner = pair.into_inner().next().expect("type");
        let kind = match inner.as_rule() {
            Rule::tuple_type => {
                // `(T)` groups; `(T,)` and `(T, U)` are tuples.
                let text = inner.as_str();
                let trailing_comma = text[..text.len() - 1].trim_end().ends_with(',');
                let mut parts: Vec<TypeExpr> =
                    inner.into_inner().map(|t| self.type_expr(t)).collect();
                if parts.len() == 1 && !trailing_comma {
                    let mut t = parts.remove(0);
                    t.span = span;
                    return t;
                }
                TypeExprKind::Tuple(parts)
            }
            Rule::named_type => {
                TypeExprKind::Named(self.name(inner.into_inner().next().expect("type name")))
            }
            Rule::tensor_type => {
                let mut dtype = None;
                let mut dims = Vec::new();
                for p in inner.into_inner() {
                    match p.as_rule() {
                        Rule::ident => dtype = Some(self.name(p)),
                        Rule::dim => {
                            let d = p.into_inner().next().expect("dim");
                            dims.push(match d.as_rule() {
                                Rule::dim_pack => {
                                    DimExpr::Pack(self.name(d.into_inner().next().expect("pack")))
                                }
                                _ => DimExpr::Expr(self.expr(d)),
                            });
                        }
                        r => unreachable!("tensor type child {r:?}"),
                    }
                }
                TypeExprKind::Tensor { dtype, dims }
            }
            r => unreachable!("type child {r:?}"),
        };
        TypeExpr { kind, span }
    }

    fn dataset_def(&mut self, pair: Pair<'_, Rule>) -> DatasetDef {
        let mut it = kids(pair);
        let name = self.name(it.next().expect("dataset name"));
        let mut splits = Vec::new();
        for s in it {
            let span = self.span(&s);
            let doc = self.doc_before(&s);
            let mut split_name = None;
            let mut fields = Vec::new();
            for p in kids(s) {
                match p.as_rule() {
                    Rule::ident => split_name = Some(self.name(p)),
                    Rule::record_field => {
                        let mut fi = p.into_inner();
                        let n = self.name(fi.next().expect("field name"));
                        let e = self.expr(fi.next().expect("field value"));
                        fields.push((n, e));
                    }
                    r => unreachable!("split child {r:?}"),
                }
            }
            splits.push(Split {
                doc,
                name: split_name.expect("split name"),
                fields,
                span,
            });
        }
        DatasetDef { name, splits }
    }

    fn train_def(&mut self, pair: Pair<'_, Rule>) -> TrainDef {
        let mut it = kids(pair).peekable();
        let name = self.name(it.next().expect("train target"));
        let mut args = None;
        let mut args_span = None;
        if it.peek().is_some_and(|p| p.as_rule() == Rule::call_args) {
            let p = it.next().expect("call args");
            args_span = Some(self.span(&p));
            args = Some(self.call_args(p));
        }
        let dataset = self.name(it.next().expect("dataset name"));
        let mut items = Vec::new();
        for p in it {
            let span = self.span(&p);
            let doc = self.doc_before(&p);
            let mut kind = None;
            for c in kids(p) {
                match c.as_rule() {
                    Rule::model_binding => kind = Some(TrainItemKind::Model(self.binding(c))),
                    Rule::let_stmt => kind = Some(TrainItemKind::Let(self.let_stmt(c))),
                    Rule::field => {
                        let (n, e) = self.field(c);
                        kind = Some(TrainItemKind::Field(n, e));
                    }
                    Rule::step_block => {
                        let mut si = kids(c);
                        let step_name = self.name(si.next().expect("step name"));
                        let steps = si.map(|s| self.step_item(s)).collect();
                        kind = Some(TrainItemKind::Step {
                            name: step_name,
                            items: steps,
                        });
                    }
                    r => unreachable!("train item child {r:?}"),
                }
            }
            items.push(TrainItem {
                doc,
                kind: kind.expect("train item"),
                span,
            });
        }
        TrainDef {
            name,
            args,
            args_span,
            dataset,
            items,
        }
    }

    fn step_item(&mut self, pair: Pair<'_, Rule>) -> StepItem {
        let span = self.span(&pair);
        let c = kids(pair).next().expect("step item");
        let kind = match c.as_rule() {
            Rule::let_stmt => StepItemKind::Let(self.let_stmt(c)),
            Rule::field => {
                let (n, e) = self.field(c);
                StepItemKind::Field(n, e)
            }
            Rule::update_stmt => {
                let mut models = Vec::new();
                let mut optimizer = None;
                for p in kids(c) {
                    match p.as_rule() {
                        Rule::ident => models.push(self.name(p)),
                        _ => optimizer = Some(self.expr(p)),
                    }
                }
                StepItemKind::Update {
                    models,
                    optimizer: optimizer.expect("optimizer"),
                }
            }
            r => unreachable!("step child {r:?}"),
        };
        StepItem { kind, span }
    }

    fn field(&mut self, pair: Pair<'_, Rule>) -> (Name, Expr) {
        let mut it = pair.into_inner();
        let n = self.name(it.next().expect("field name"));
        let e = self.expr(it.next().expect("field value"));
        (n, e)
    }

    fn block(&mut self, pair: Pair<'_, Rule>) -> Block {
        let span = self.span(&pair);
        let mut lets = Vec::new();
        let mut value = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::let_stmt => lets.push(self.let_stmt(p)),
                Rule::expr => value = Some(self.expr(p)),
                r => unreachable!("block child {r:?}"),
            }
        }
        Block {
            lets,
            value: Box::new(value.expect("block value")),
            span,
        }
    }

    fn let_stmt(&mut self, pair: Pair<'_, Rule>) -> Let {
        let span = self.span(&pair);
        let mut pattern = None;
        let mut ty = None;
        let mut value = None;
        for p in kids(pair) {
            match p.as_rule() {
                Rule::pattern => pattern = Some(self.pattern(p)),
                Rule::type_expr => ty = Some(self.type_expr(p)),
                Rule::expr => value = Some(self.expr(p)),
                r => unreachable!("let child {r:?}"),
            }
        }
        Let {
            pattern: pattern.expect("let pattern"),
            ty,
            value: value.expect("let value"),
            span,
        }
    }

    fn pattern(&mut self, pair: Pair<'_, Rule>) -> Pattern {
        let span = self.span(&pair);
        let text = pair.as_str();
        let trailing_comma =
            text.ends_with(')') && text[..text.len() - 1].trim_end().ends_with(',');
        let mut inner: Vec<_> = pair.into_inner().collect();
        if inner.len() == 1 && inner[0].as_rule() == Rule::ident {
            return Pattern::Name(self.name(inner.remove(0)));
        }
        if inner.len() == 1 && !trailing_comma {
            // `(a)` groups; `(a,)` is a one-element tuple.
            return self.pattern(inner.remove(0));
        }
        Pattern::Tuple(inner.into_iter().map(|p| self.pattern(p)).collect(), span)
    }

    fn call_args(&mut self, pair: Pair<'_, Rule>) -> Vec<Arg> {
        pair.into_inner()
            .map(|a| {
                let mut name = None;
                let mut value = None;
                for p in a.into_inner() {
                    match p.as_rule() {
                        Rule::ident => name = Some(self.name(p)),
                        _ => value = Some(self.expr(p)),
                    }
                }
                Arg {
                    name,
                    value: value.expect("argument"),
                }
            })
            .collect()
    }

    fn too_deep(&mut self, span: Span) -> Expr {
        // One report per declaration is enough; the rest would repeat it.
        if std::mem::replace(&mut self.reported_too_deep, true) {
            return Expr {
                kind: ExprKind::Error,
                span,
            };
        }
        self.diags.push(
            Diagnostic::error(
                codes::NESTING_TOO_DEEP,
                self.file,
                span,
                format!("expression nested more than {MAX_EXPR_DEPTH} levels deep"),
            )
            .with_label("too deep")
            .with_help("split the expression with `let` bindings"),
        );
        Expr {
            kind: ExprKind::Error,
            span,
        }
    }

    /// Any expression-level rule.
    fn expr(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        if self.depth >= MAX_EXPR_DEPTH {
            return self.too_deep(span);
        }
        // Only rules that create a node of the tree count towards its depth; the
        // grammar's precedence levels pass through.
        let creates_node = matches!(
            pair.as_rule(),
            Rule::paren_expr
                | Rule::list_expr
                | Rule::if_expr
                | Rule::block
                | Rule::scan_expr
                | Rule::pow_expr
        );
        self.depth += usize::from(creates_node);
        let e = self.expr_inner(pair, span);
        self.depth -= usize::from(creates_node);
        e
    }

    fn expr_inner(&mut self, pair: Pair<'_, Rule>, span: Span) -> Expr {
        match pair.as_rule() {
            Rule::expr | Rule::expr_no_block | Rule::primary => {
                let inner = pair.into_inner().next().expect("expression");
                self.expr(inner)
            }
            Rule::pipe_expr => self.left_chain(pair, |b, _op, l, r| {
                let span = l.span.to(r.span);
                b.node(ExprKind::Pipe(Box::new(l), Box::new(r)), span)
            }),
            Rule::or_expr | Rule::and_expr | Rule::cmp_expr | Rule::add_expr | Rule::mul_expr => {
                self.left_chain(pair, |b, op, l, r| {
                    let span = l.span.to(r.span);
                    let (op, op_span) = op.expect("operator");
                    b.node(
                        ExprKind::Binary {
                            op: bin_op(op),
                            op_span,
                            lhs: Box::new(l),
                            rhs: Box::new(r),
                        },
                        span,
                    )
                })
            }
            Rule::unary_expr => {
                let mut ops = Vec::new();
                let mut operand = None;
                for p in pair.into_inner() {
                    match p.as_rule() {
                        Rule::unary_op => ops.push((p.as_str() == "-", self.span(&p))),
                        _ => operand = Some(p),
                    }
                }
                let operand = operand.expect("operand");
                // Fold `-3` and `-1.5e2` into literals so that `i64::MIN` and negative
                // dimensions read naturally.
                if let [(true, _)] = ops.as_slice() {
                    if let Some(lit) = self.negative_literal(&operand, span) {
                        return lit;
                    }
                }
                // Each operator adds a level above the operand.
                if !ops.is_empty() && self.depth + ops.len() >= MAX_EXPR_DEPTH {
                    let at = ops[MAX_EXPR_DEPTH
                        .saturating_sub(self.depth + 1)
                        .min(ops.len() - 1)]
                    .1;
                    return self.too_deep(at);
                }
                self.depth += ops.len();
                let operand = self.expr(operand);
                self.depth -= ops.len();
                let mut e = operand;
                for (neg, op_span) in ops.into_iter().rev() {
                    let op = if neg { UnOp::Neg } else { UnOp::Not };
                    let span = op_span.to(e.span);
                    e = self.node(ExprKind::Unary(op, Box::new(e)), span);
                }
                e
            }
            Rule::pow_expr => {
                let mut it = pair.into_inner();
                let base = self.expr(it.next().expect("base"));
                match it.next() {
                    Some(op) => {
                        let op_span = self.span(&op);
                        let exp = self.expr(it.next().expect("exponent"));
                        let span = base.span.to(exp.span);
                        self.node(
                            ExprKind::Binary {
                                op: BinOp::Pow,
                                op_span,
                                lhs: Box::new(base),
                                rhs: Box::new(exp),
                            },
                            span,
                        )
                    }
                    None => base,
                }
            }
            Rule::postfix_expr => {
                let mut it = pair.into_inner();
                let primary = it.next().expect("primary");
                let posts: Vec<_> = it.collect();
                if !posts.is_empty() && self.depth + posts.len() >= MAX_EXPR_DEPTH {
                    let at = MAX_EXPR_DEPTH
                        .saturating_sub(self.depth + 1)
                        .min(posts.len() - 1);
                    let at = self.span(&posts[at]);
                    return self.too_deep(at);
                }
                // Operands and arguments sit below every suffix of the chain.
                let n_posts = posts.len();
                self.depth += n_posts;
                let mut e = self.expr(primary);
                for post in posts {
                    let post = post.into_inner().next().expect("postfix");
                    let span = e.span.to(self.span(&post));
                    let kind = match post.as_rule() {
                        Rule::call_args => ExprKind::Call {
                            callee: Box::new(e),
                            args: self.call_args(post),
                        },
                        Rule::index_suffix => {
                            let items = post.into_inner().map(|i| self.index_item(i)).collect();
                            ExprKind::Index(Box::new(e), items)
                        }
                        Rule::field_suffix => {
                            let n = match post.clone().into_inner().next() {
                                Some(ident) => self.name(ident),
                                None => {
                                    let at = self.span(&post);
                                    let d = if matches!(e.kind, ExprKind::Int(_)) {
                                        // `1.`: a number, not a member access.
                                        Diagnostic::error(
                                            codes::SYNTAX,
                                            self.file,
                                            at,
                                            "expected digits after the point of a number",
                                        )
                                        .with_label("a float needs a fraction")
                                        .with_help("write `1.0`, not `1.`")
                                    } else {
                                        Diagnostic::error(
                                            codes::SYNTAX,
                                            self.file,
                                            at,
                                            "expected a member name after `.`",
                                        )
                                        .with_label("expected a name")
                                    };
                                    self.diags.push(d);
                                    Name {
                                        text: String::new(),
                                        span: Span::new(at.end as usize, at.end as usize),
                                    }
                                }
                            };
                            ExprKind::Field(Box::new(e), n)
                        }
                        r => unreachable!("postfix {r:?}"),
                    };
                    e = self.node(kind, span);
                }
                self.depth -= n_posts;
                e
            }
            Rule::float => self.float(pair.as_str(), span, false),
            Rule::int => self.int(pair.as_str(), span, false),
            Rule::string => {
                let before = self.diags.len();
                let s = self.str_lit(pair);
                if self.diags.len() > before {
                    // A bad escape was reported; do not use the string's value.
                    return self.node(ExprKind::Error, span);
                }
                self.node(ExprKind::Str(s.value), span)
            }
            Rule::kw_true => self.node(ExprKind::Bool(true), span),
            Rule::kw_false => self.node(ExprKind::Bool(false), span),
            Rule::ident => {
                let n = self.name(pair);
                self.node(ExprKind::Name(n), span)
            }
            Rule::paren_expr => {
                let text = pair.as_str();
                let mut named = Vec::new();
                let mut elems: Vec<Expr> = Vec::new();
                for elem in pair.into_inner() {
                    let mut it = elem.into_inner();
                    let first = it.next().expect("paren element");
                    if first.as_rule() == Rule::ident {
                        let n = self.name(first);
                        let v = self.expr(it.next().expect("record value"));
                        named.push((n, v));
                    } else {
                        elems.push(self.expr(first));
                    }
                }
                if !named.is_empty() {
                    if let Some(e) = elems.first() {
                        self.diags.push(
                            Diagnostic::error(
                                codes::SYNTAX,
                                self.file,
                                e.span,
                                "a record cannot mix named and unnamed fields",
                            )
                            .with_label("unnamed field")
                            .with_help("write `name = value` for every field"),
                        );
                    }
                    return self.node(ExprKind::Record(named), span);
                }
                // `(x)` is grouping; `(x,)` and `()` are tuples.
                let trailing_comma = text[..text.len() - 1].trim_end().ends_with(',');
                if elems.len() == 1 && !trailing_comma {
                    let mut e = elems.remove(0);
                    e.span = span;
                    e
                } else {
                    self.node(ExprKind::Tuple(elems), span)
                }
            }
            Rule::list_expr => {
                let elems = pair.into_inner().map(|p| self.expr(p)).collect();
                self.node(ExprKind::List(elems), span)
            }
            Rule::block => {
                let b = self.block(pair);
                self.node(ExprKind::Block(b), span)
            }
            Rule::if_expr => {
                let mut it = kids(pair);
                let cond = self.expr(it.next().expect("condition"));
                let then = self.block(it.next().expect("then block"));
                let els = it.next().map(|e| Box::new(self.expr(e)));
                self.node(
                    ExprKind::If {
                        cond: Box::new(cond),
                        then,
                        els,
                    },
                    span,
                )
            }
            Rule::scan_expr => {
                let mut it = kids(pair);
                let item = self.name(it.next().expect("scan item"));
                let over = self.expr(it.next().expect("scan source"));
                let mut carries = Vec::new();
                let mut body = None;
                while let Some(p) = it.next() {
                    match p.as_rule() {
                        Rule::ident => {
                            let n = self.name(p);
                            let v = self.expr(it.next().expect("carry init"));
                            carries.push((n, v));
                        }
                        Rule::block => body = Some(self.block(p)),
                        r => unreachable!("scan child {r:?}"),
                    }
                }
                self.node(
                    ExprKind::Scan {
                        item,
                        over: Box::new(over),
                        carries,
                        body: body.expect("scan body"),
                    },
                    span,
                )
            }
            r => unreachable!("expression rule {r:?}"),
        }
    }

    fn node(&self, kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }

    /// Builds a left-associative chain `a op b op c` from alternating children.
    fn left_chain(
        &mut self,
        pair: Pair<'_, Rule>,
        mut join: impl FnMut(&mut Self, Option<(&str, Span)>, Expr, Expr) -> Expr,
    ) -> Expr {
        let children: Vec<Pair<'_, Rule>> = pair.into_inner().collect();
        let links = children
            .iter()
            .filter(|p| !is_operator(p.as_rule()))
            .count()
            - 1;
        if links > 0 && self.depth + links >= MAX_EXPR_DEPTH {
            // Point at the operator where the chain gets too long.
            let ops: Vec<&Pair<'_, Rule>> = children.iter().skip(1).collect();
            let at = MAX_EXPR_DEPTH
                .saturating_sub(self.depth + 1)
                .min(ops.len().saturating_sub(1));
            let at = ops.get(at).map_or(Span::default(), |p| self.span(p));
            return self.too_deep(at);
        }
        // The leftmost operand ends up `links` levels down; keep every operand below.
        self.depth += links;
        let mut it = children.into_iter();
        let mut e = self.expr(it.next().expect("operand"));
        while let Some(p) = it.next() {
            let (op, rhs) = if is_operator(p.as_rule()) {
                let op_span = self.span(&p);
                (
                    Some((p.as_str(), op_span)),
                    it.next().expect("right operand"),
                )
            } else {
                (None, p)
            };
            let r = self.expr(rhs);
            e = join(self, op, e, r);
        }
        self.depth -= links;
        e
    }

    fn index_item(&mut self, pair: Pair<'_, Rule>) -> IndexItem {
        let inner = pair.into_inner().next().expect("index item");
        match inner.as_rule() {
            Rule::ellipsis => IndexItem::Ellipsis(self.span(&inner)),
            Rule::slice => {
                let span = self.span(&inner);
                let mut parts: [Option<Expr>; 3] = [None, None, None];
                let mut slot = 0;
                let text_start = inner.as_span().start();
                let text = inner.as_str();
                // Place each expression by counting the colons before it.
                for p in inner.into_inner() {
                    let before = &text[..p.as_span().start() - text_start];
                    slot = before.matches(':').count().min(2).max(slot);
                    parts[slot] = Some(self.expr(p));
                }
                let [start, stop, step] = parts.map(|p| p.map(Box::new));
                IndexItem::Slice {
                    start,
                    stop,
                    step,
                    span,
                }
            }
            _ => IndexItem::Index(self.expr(inner)),
        }
    }

    fn negative_literal(&mut self, operand: &Pair<'_, Rule>, span: Span) -> Option<Expr> {
        // Descend pow_expr → postfix_expr → primary → literal when there is no suffix.
        let mut p = operand.clone();
        loop {
            let mut inner = p.clone().into_inner();
            let first = inner.next()?;
            if inner.next().is_some() {
                return None;
            }
            match first.as_rule() {
                Rule::int => return Some(self.int(first.as_str(), span, true)),
                Rule::float => return Some(self.float(first.as_str(), span, true)),
                Rule::postfix_expr | Rule::primary => p = first,
                _ => return None,
            }
        }
    }

    fn int(&mut self, text: &str, span: Span, negative: bool) -> Expr {
        let digits: String = text.chars().filter(|c| *c != '_').collect();
        let parsed = digits.parse::<u128>().ok().and_then(|v| {
            let v = if negative { -(v as i128) } else { v as i128 };
            i64::try_from(v).ok()
        });
        match parsed {
            Some(v) => self.node(ExprKind::Int(v), span),
            None => {
                self.diags.push(
                    Diagnostic::error(
                        codes::INT_TOO_LARGE,
                        self.file,
                        span,
                        "integer literal is too large",
                    )
                    .with_label("does not fit in a signed 64-bit integer")
                    .with_note("integers range from -9223372036854775808 to 9223372036854775807"),
                );
                self.node(ExprKind::Error, span)
            }
        }
    }

    fn float(&mut self, text: &str, span: Span, negative: bool) -> Expr {
        let digits: String = text.chars().filter(|c| *c != '_').collect();
        match digits.parse::<f64>() {
            Ok(v) if v.is_finite() => {
                self.node(ExprKind::Float(if negative { -v } else { v }), span)
            }
            _ => {
                self.diags.push(
                    Diagnostic::error(
                        codes::FLOAT_OUT_OF_RANGE,
                        self.file,
                        span,
                        "float literal is out of range",
                    )
                    .with_label("overflows a 64-bit float"),
                );
                self.node(ExprKind::Error, span)
            }
        }
    }
}

fn is_operator(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::op_or | Rule::op_and | Rule::cmp_op | Rule::add_op | Rule::mul_op
    )
}

fn bin_op(op: &str) -> BinOp {
    match op {
        "+" => BinOp::Add,
        "-" => BinOp::Sub,
        "*" => BinOp::Mul,
        "/" => BinOp::Div,
        "%" => BinOp::Rem,
        "@" => BinOp::MatMul,
        "==" => BinOp::Eq,
        "!=" => BinOp::Ne,
        "<" => BinOp::Lt,
        "<=" => BinOp::Le,
        ">" => BinOp::Gt,
        ">=" => BinOp::Ge,
        "&&" => BinOp::And,
        "||" => BinOp::Or,
        other => unreachable!("operator {other}"),
    }
}

fn doc_text(rest: &str) -> String {
    rest.strip_prefix(' ')
        .unwrap_or(rest)
        .trim_end()
        .to_string()
}

fn join_doc(lines: Vec<String>) -> Option<String> {
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Resolves escapes; also returns the first unknown escape (offset, character).
fn unescape(s: &str) -> (String, Option<(usize, char)>) {
    let mut out = String::with_capacity(s.len());
    let mut bad = None;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some((_, 'n')) => out.push('\n'),
            Some((_, 't')) => out.push('\t'),
            Some((_, 'r')) => out.push('\r'),
            Some((_, '"')) => out.push('"'),
            Some((_, '\\')) => out.push('\\'),
            Some((_, other)) => {
                bad.get_or_insert((i, other));
                out.push(other);
            }
            None => {}
        }
    }
    (out, bad)
}

/// Length of `text` without trailing whitespace and comments. Works backwards, so it
/// costs only the trailing trivia and the last line, whatever the text's length.
fn significant_len(text: &str) -> usize {
    let mut end = text.len();
    loop {
        let t = text[..end].trim_end();
        end = t.len();
        if let Some(body) = t.strip_suffix("*/") {
            match body.rfind("/*") {
                Some(open) => {
                    end = open;
                    continue;
                }
                None => return end,
            }
        }
        // A line comment at the end of the last line, outside any string.
        let line_start = t.rfind('\n').map_or(0, |i| i + 1);
        match line_comment_start(&t[line_start..]) {
            Some(c) => end = line_start + c,
            None => return end,
        }
    }
}

/// Where a `//` comment starts in `line`, ignoring `//` inside strings.
fn line_comment_start(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    while i < b.len() {
        match b[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'/' if !in_string && b.get(i + 1) == Some(&b'/') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn spans_exclude_trailing_trivia() {
        assert_eq!(super::significant_len("-3   // three\n  "), 2);
        assert_eq!(super::significant_len("x + y /* c */ "), 5);
        assert_eq!(super::significant_len("\"a // b\"  "), 8);
        assert_eq!(super::significant_len("f(x)"), 4);
    }
}
