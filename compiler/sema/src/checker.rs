//! The checking context shared by every query that looks inside a declaration:
//! scopes of local names, name lookup, declared types and static values.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use dnnc_diagnostics::{codes, Diagnostic, Span};
use dnnc_syntax::ast::{self, DimExpr, Expr, ExprKind, TypeExprKind};

use crate::db::{Db, SourceFile};
use crate::dim::{Atom, Dim};
use crate::items::{
    self, layer_hparams, layer_sig, FnSig, HParamSig, ItemId, ParamDecl, ParamSig, StaticKind,
    SubLayer,
};
use crate::scope::{file_scope, DefKind};
use crate::ty::{DType, DimItem, ItemRef, LayerInst, Shape, Static, TensorTy, Ty};

/// A local name: its type and where it was declared.
#[derive(Clone, Debug)]
pub struct Local {
    pub ty: Ty,
    pub span: Option<Span>,
}

/// The members of the layer whose body is being checked.
#[derive(Clone, Debug, Default)]
pub struct LayerScope {
    pub names: HashMap<Arc<str>, Local>,
    /// Layer methods callable by name from other methods.
    pub methods: HashMap<Arc<str>, FnSig>,
    /// The layer itself with symbolic hyperparameters, for calls between its methods.
    pub self_inst: Option<LayerInst>,
    /// Where the layer's buffers are declared: `assign` takes only these names.
    pub buffers: Vec<Span>,
}

impl LayerScope {
    /// Hyperparameters as symbols: `hidden` is the Int `hidden`.
    pub fn symbolic(hparams: &[HParamSig]) -> LayerScope {
        let mut s = LayerScope::default();
        for h in hparams {
            s.names.insert(
                h.name.clone(),
                Local {
                    ty: h.kind.symbolic(&h.name),
                    span: Some(h.span),
                },
            );
        }
        s
    }
}

/// How unknown names in a type's dimensions are treated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum DimMode {
    /// In a function's parameter types: an unknown name introduces a symbolic dimension.
    Introduce,
    /// Elsewhere: an unknown name is an error.
    Strict,
}

pub struct Checker<'db> {
    pub db: &'db dyn Db,
    pub file: SourceFile,
    pub fname: Arc<str>,
    pub diags: Vec<Diagnostic>,
    /// Local scopes, innermost last.
    pub scopes: Vec<HashMap<Arc<str>, Local>>,
    pub layer: Option<LayerScope>,
    /// Symbolic dimensions and packs of the function being checked.
    pub dims: Vec<Arc<str>>,
    pub packs: Vec<Arc<str>>,
    /// Loaders (`idx`, `npy`, `csv`) are callable: inside a dataset's fields.
    pub in_dataset: bool,
    /// Types of checked expressions, for hover.
    pub types: Vec<(Span, Ty)>,
    /// While checking a call of a layer instance: where the instance was bound.
    pub callee_note: Option<(Span, String)>,
    /// After an error that leaves names unbound (a broken `train` header or dataset),
    /// unknown names are not reported again.
    pub quiet_unknown: bool,
    /// In a parameter's shape: a division of hyperparameters that is not known to be
    /// exact stays a quotient, checked when the layer is instantiated.
    pub quotients: bool,
    /// The divisions such a shape relies on, `(n, d)`: `d` must divide `n`.
    pub divisions: Vec<(Dim, Dim)>,
    /// For each local bound by a `let` (by the span of its name): the locals its value
    /// reads, directly or through other `let`s — what `grad`'s zero-gradient warning
    /// consults.
    pub let_reads: HashMap<Span, Arc<HashSet<Arc<str>>>>,
    /// The spans of the names of function parameters: values from the caller, which
    /// may depend on each other.
    pub param_spans: HashSet<Span>,
}

impl<'db> Checker<'db> {
    pub fn new(db: &'db dyn Db, file: SourceFile) -> Checker<'db> {
        Checker {
            db,
            file,
            fname: file.name(db).clone(),
            diags: Vec::new(),
            scopes: vec![HashMap::new()],
            layer: None,
            dims: Vec::new(),
            packs: Vec::new(),
            in_dataset: false,
            types: Vec::new(),
            callee_note: None,
            quiet_unknown: false,
            quotients: false,
            divisions: Vec::new(),
            let_reads: HashMap::new(),
            param_spans: HashSet::new(),
        }
    }

    pub fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    pub fn err(
        &self,
        code: dnnc_diagnostics::Code,
        span: Span,
        msg: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::error(code, &self.fname, span, msg)
    }

    pub fn push_scope(&mut self) {
        self.scopes.push(HashMap::new());
    }

    pub fn pop_scope(&mut self) {
        self.scopes.pop();
    }

    /// The locals `e` reads, directly or through the `let`s that bound them.
    pub fn local_reads(&self, e: &Expr) -> HashSet<Arc<str>> {
        let mut out = HashSet::new();
        crate::recursion::names_read(e, &mut |n, _| {
            if let Some(l) = self.local(n) {
                out.insert(Arc::from(n));
                if let Some(reads) = l.span.and_then(|s| self.let_reads.get(&s)) {
                    out.extend(reads.iter().cloned());
                }
            }
        });
        out
    }

    /// The local `name` as it is bound here.
    pub fn local(&self, name: &str) -> Option<&Local> {
        self.scopes.iter().rev().find_map(|s| s.get(name))
    }

    /// Whether the local `name` is a parameter of the function being checked.
    pub fn is_param(&self, name: &str) -> bool {
        self.local(name)
            .and_then(|l| l.span)
            .is_some_and(|s| self.param_spans.contains(&s))
    }

    pub fn bind(&mut self, name: &str, ty: Ty, span: Option<Span>) {
        if let Some(s) = self.scopes.last_mut() {
            s.insert(Arc::from(name), Local { ty, span });
        }
    }

    pub fn item_ref(&self, file: SourceFile, index: u32) -> ItemRef {
        let item = &crate::scope::parse(self.db, file).module.items[index as usize];
        let name = item.defined_name().map_or("?", |n| n.text.as_str());
        ItemRef {
            file: file.name(self.db).clone(),
            file_id: file,
            index,
            name: Arc::from(name),
        }
    }

    pub fn item_id(&self, r: &ItemRef) -> ItemId<'db> {
        ItemId::new(self.db, r.file_id, r.index)
    }

    /// Looks a name up: locals, layer members, the file's scope, then builtins.
    pub fn lookup(&self, name: &str) -> Option<Local> {
        for s in self.scopes.iter().rev() {
            if let Some(l) = s.get(name) {
                return Some(l.clone());
            }
        }
        if let Some(layer) = &self.layer {
            if let Some(l) = layer.names.get(name) {
                return Some(l.clone());
            }
            if let (Some(m), Some(inst)) = (layer.methods.get(name), &layer.self_inst) {
                return Some(Local {
                    ty: Ty::Method(inst.clone(), m.name.clone()),
                    span: Some(m.span),
                });
            }
        }
        if self.dims.iter().any(|d| &**d == name) {
            return Some(Local {
                ty: Ty::Int(Some(Dim::sym(name))),
                span: None,
            });
        }
        let scope = file_scope(self.db, self.file);
        if let Some(def) = scope.names.get(name) {
            let r = ItemRef {
                file: def.file.name(self.db).clone(),
                file_id: def.file,
                index: def.index,
                name: Arc::from(name),
            };
            let ty = match def.kind {
                DefKind::Layer => Ty::LayerCtor(r),
                DefKind::Fn => Ty::Func(r),
                DefKind::Dataset => Ty::Dataset(r),
                DefKind::Broken => Ty::Error,
            };
            // Declarations in this file are shown as "declared here" in messages.
            let span = (def.file == self.file)
                .then(|| {
                    crate::scope::module_items(self.db, self.file)
                        .names
                        .get(name)
                        .map(|(_, s)| *s)
                })
                .flatten();
            return Some(Local { ty, span });
        }
        crate::builtins::lookup(name, self.in_dataset).map(|ty| Local { ty, span: None })
    }

    /// Every name visible here, for "did you mean" suggestions.
    pub fn visible_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.scopes {
            out.extend(s.keys().map(|k| k.to_string()));
        }
        if let Some(layer) = &self.layer {
            out.extend(layer.names.keys().map(|k| k.to_string()));
            out.extend(layer.methods.keys().map(|k| k.to_string()));
        }
        out.extend(self.dims.iter().map(|k| k.to_string()));
        out.extend(
            file_scope(self.db, self.file)
                .names
                .keys()
                .map(|k| k.to_string()),
        );
        out.extend(crate::builtins::names(self.in_dataset).map(str::to_string));
        out
    }

    pub fn unknown_name(&mut self, name: &str, span: Span, what: &str) {
        if self.quiet_unknown {
            return;
        }
        if crate::builtins::is_loader(name) && !self.in_dataset {
            let d = self
                .err(
                    codes::UNKNOWN_LOADER,
                    span,
                    format!("the loader `{name}` can only be used in a `dataset`"),
                )
                .with_label("outside a dataset")
                .with_help("declare the data in a `dataset` block and train `on` it");
            self.error(d);
            return;
        }
        let mut d = self
            .err(
                codes::UNKNOWN_NAME,
                span,
                format!("cannot find {what} `{name}` in this scope"),
            )
            .with_label("not found");
        let names = self.visible_names();
        if let Some(s) = crate::suggest::closest(name, names.iter().map(String::as_str)) {
            d = d.with_help(format!("a similar name exists: `{s}`"));
        } else if let Some(module) = crate::builtins::std_module_of(name) {
            d = d.with_help(format!("import it with `use std::{module}::{name}`"));
        }
        self.error(d);
    }

    /// Hyperparameter declarations with their defaults.
    pub fn hparams(&mut self, hs: &[ast::HParam]) -> Vec<HParamSig> {
        let mut out: Vec<HParamSig> = Vec::new();
        for h in hs {
            let Some(kind) = StaticKind::from_name(&h.ty.text) else {
                let d = self
                    .err(
                        codes::UNKNOWN_TYPE,
                        h.ty.span,
                        format!("unknown hyperparameter type `{}`", h.ty.text),
                    )
                    .with_label("not a hyperparameter type")
                    .with_help("hyperparameters are `Int`, `Float`, `Bool` or `Str`");
                self.error(d);
                continue;
            };
            if let Some(prev) = out.iter().find(|p| *p.name == *h.name.text) {
                let d = self
                    .err(
                        codes::DUPLICATE_DEFINITION,
                        h.name.span,
                        format!("hyperparameter `{}` is declared twice", h.name.text),
                    )
                    .with_label("declared again")
                    .with_secondary(&self.fname.clone(), prev.span, "first declared here");
                self.error(d);
                continue;
            }
            let default = h.default.as_ref().and_then(|e| {
                let ty = self.expr(e);
                self.static_of_kind(&ty, kind, e.span, "a default value")
            });
            out.push(HParamSig {
                name: Arc::from(h.name.text.as_str()),
                kind,
                default,
                span: h.name.span,
                doc: h.doc.clone(),
            });
        }
        out
    }

    /// Converts a checked type to a static value of `kind`, reporting a mismatch.
    pub fn static_of_kind(
        &mut self,
        ty: &Ty,
        kind: StaticKind,
        span: Span,
        what: &str,
    ) -> Option<Static> {
        let v = match (kind, ty) {
            (_, Ty::Error) => return None,
            (_, Ty::Tensor(t)) => {
                let d = self
                    .err(
                        codes::NOT_STATIC,
                        span,
                        format!("{what} must be known at compile time, found a tensor"),
                    )
                    .with_label(format!("this is `{t}`, computed at run time"))
                    .with_help(format!("write a `{}` value here", kind.name()));
                self.error(d);
                return None;
            }
            (StaticKind::Int, Ty::Int(Some(d))) => Some(Static::Int(d.clone())),
            (StaticKind::Float, Ty::Float(Some(x))) => Some(Static::Float(*x)),
            (StaticKind::Float, Ty::Int(Some(d))) => d.as_const().map(|c| Static::Float(c as f64)),
            (StaticKind::Bool, Ty::Bool(Some(b))) => Some(Static::Bool(*b)),
            (StaticKind::Str, Ty::Str(Some(s))) => Some(Static::Str(s.clone())),
            (StaticKind::Int, Ty::Int(None))
            | (StaticKind::Float, Ty::Float(None) | Ty::Int(None))
            | (StaticKind::Bool, Ty::Bool(None))
            | (StaticKind::Str, Ty::Str(None)) => {
                let d = self
                    .err(
                        codes::NOT_STATIC,
                        span,
                        format!("{what} must be known at compile time"),
                    )
                    .with_label("its value depends on something only known later");
                self.error(d);
                return None;
            }
            _ => None,
        };
        if v.is_none() {
            let d = self
                .err(
                    codes::TYPE_MISMATCH,
                    span,
                    format!(
                        "expected `{}` for {what}, found {}",
                        kind.name(),
                        ty.kind_name()
                    ),
                )
                .with_label(format!("this is `{ty}`"));
            self.error(d);
        }
        v
    }

    /// The signature of a function (or a method, when `self.layer` is set).
    pub fn fn_signature(&mut self, def: &ast::FnDef, doc: Option<String>) -> FnSig {
        self.dims.clear();
        self.packs.clear();
        let mut params: Vec<ParamSig> = Vec::new();
        for p in &def.params {
            if let Some(prev) = params.iter().find(|q| *q.name == *p.name.text) {
                let d = self
                    .err(
                        codes::DUPLICATE_DEFINITION,
                        p.name.span,
                        format!("parameter `{}` is declared twice", p.name.text),
                    )
                    .with_label("declared again")
                    .with_secondary(&self.fname.clone(), prev.span, "first declared here");
                self.error(d);
                continue;
            }
            let ty = self.type_expr(&p.ty, DimMode::Introduce);
            let default = p.default.as_ref().and_then(|e| {
                let dty = self.expr(e);
                match &ty {
                    Ty::Int(_) => self.static_of_kind(&dty, StaticKind::Int, e.span, "a default"),
                    Ty::Float(_) => {
                        self.static_of_kind(&dty, StaticKind::Float, e.span, "a default")
                    }
                    Ty::Bool(_) => self.static_of_kind(&dty, StaticKind::Bool, e.span, "a default"),
                    Ty::Str(_) => self.static_of_kind(&dty, StaticKind::Str, e.span, "a default"),
                    _ => {
                        let d = self
                            .err(
                                codes::TYPE_MISMATCH,
                                e.span,
                                "only static parameters can have default values",
                            )
                            .with_label("tensor parameters are always passed");
                        self.error(d);
                        None
                    }
                }
            });
            // A static Int parameter can size later types: `fn f(x: [B], n: Int) -> [B, n]`.
            if matches!(ty, Ty::Int(_)) {
                self.dims.push(Arc::from(p.name.text.as_str()));
            }
            params.push(ParamSig {
                name: Arc::from(p.name.text.as_str()),
                ty,
                default,
                span: p.name.span,
            });
        }
        let (ret, ret_span) = match &def.ret {
            Some(t) => (self.type_expr(t, DimMode::Strict), t.span),
            None => {
                let d = self
                    .err(
                        codes::SYNTAX,
                        def.name.span,
                        format!("function `{}` has no return type", def.name.text),
                    )
                    .with_label("add `-> TYPE` after the parameters")
                    .with_help("every function declares its result type, e.g. `-> [B, 10]`");
                self.error(d);
                (Ty::Error, def.name.span)
            }
        };
        FnSig {
            name: Arc::from(def.name.text.as_str()),
            file: self.file,
            params,
            ret,
            ret_span,
            dims: self.dims.clone(),
            packs: self.packs.clone(),
            span: def.name.span,
            doc,
        }
    }

    /// Params, sub-layers and method signatures of a layer.
    pub fn layer_members(
        &mut self,
        def: &ast::LayerDef,
    ) -> (Vec<ParamDecl>, Vec<SubLayer>, Vec<FnSig>) {
        let mut params: Vec<ParamDecl> = Vec::new();
        let mut subs: Vec<SubLayer> = Vec::new();
        let mut methods: Vec<FnSig> = Vec::new();
        let mut seen: HashMap<String, Span> = HashMap::new();
        if let Some(layer) = &self.layer {
            for (n, l) in &layer.names {
                if let Some(s) = l.span {
                    seen.insert(n.to_string(), s);
                }
            }
        }
        for m in &def.members {
            let name = match &m.kind {
                ast::MemberKind::Param { name, .. } => name,
                ast::MemberKind::SubLayer(b) => &b.name,
                ast::MemberKind::Fn(f) => &f.name,
            };
            if let Some(prev) = seen.get(&name.text) {
                let d = self
                    .err(
                        codes::DUPLICATE_DEFINITION,
                        name.span,
                        format!(
                            "`{}` is defined twice in layer `{}`",
                            name.text, def.name.text
                        ),
                    )
                    .with_label("defined again")
                    .with_secondary(&self.fname.clone(), *prev, "first defined here");
                self.error(d);
                continue;
            }
            seen.insert(name.text.clone(), name.span);
            match &m.kind {
                ast::MemberKind::Param {
                    name,
                    ty,
                    init,
                    frozen,
                    buffer,
                } => {
                    let kw = if *buffer { "buffer" } else { "param" };
                    self.quotients = true;
                    let t = self.type_expr(ty, DimMode::Strict);
                    self.quotients = false;
                    let divisions = std::mem::take(&mut self.divisions);
                    let tensor = match t {
                        Ty::Tensor(t) => Some(t),
                        Ty::Error => None,
                        other => {
                            let d = self
                                .err(
                                    codes::TYPE_MISMATCH,
                                    ty.span,
                                    format!("a `{kw}` must be a tensor, found `{other}`"),
                                )
                                .with_label("not a tensor type");
                            self.error(d);
                            None
                        }
                    };
                    if let Some(t) = &tensor {
                        if t.shape.has_pack() {
                            let d = self
                                .err(
                                    codes::BAD_DIM,
                                    ty.span,
                                    format!("a `{kw}` cannot have a pack `..S`"),
                                )
                                .with_label("its shape is fixed by hyperparameters");
                            self.error(d);
                        }
                    }
                    if let Some(t) = &tensor {
                        let what = format!("the {kw} `{}`", name.text);
                        self.too_large(t, ty.span, &what);
                        // Updates are computed in f32 and rounded back, so the
                        // 16-bit floats train too.
                        let trainable = matches!(t.dtype, DType::F32 | DType::BF16 | DType::F16);
                        if !*buffer && frozen.is_none() && !trainable {
                            self.needs_f32(t, ty.span, "a trained parameter");
                        }
                    }
                    let init = crate::settings::check_initializer(self, init, tensor.as_ref());
                    if let Some(t) = tensor {
                        params.push(ParamDecl {
                            name: Arc::from(name.text.as_str()),
                            ty: t,
                            init,
                            span: name.span,
                            frozen: frozen.is_some(),
                            buffer: *buffer,
                            divisions,
                            doc: m.doc.clone(),
                        });
                    }
                }
                ast::MemberKind::SubLayer(b) => {
                    let inst = self.instantiate(&b.value);
                    subs.push(SubLayer {
                        name: Arc::from(b.name.text.as_str()),
                        inst,
                        span: b.name.span,
                        from: b.from.as_ref().map(|s| s.value.clone()),
                        at: b.at.as_ref().map(|s| s.value.clone()),
                        frozen: b.frozen.is_some(),
                        doc: m.doc.clone(),
                    });
                }
                ast::MemberKind::Fn(f) => {
                    let saved = (self.dims.clone(), self.packs.clone());
                    let sig = self.fn_signature(f, m.doc.clone());
                    (self.dims, self.packs) = saved;
                    methods.push(sig);
                }
            }
        }
        (params, subs, methods)
    }

    /// Checks `Layer(args)` in a binding and returns the instance.
    pub fn instantiate(&mut self, value: &Expr) -> Option<LayerInst> {
        let (callee, args) = match &value.kind {
            ExprKind::Call { callee, args } => (&**callee, args.as_slice()),
            ExprKind::Name(_) => (value, &[][..]),
            _ => {
                let d = self
                    .err(
                        codes::NOT_A_MODEL,
                        value.span,
                        "expected a layer instance such as `Dense(784, 256)`",
                    )
                    .with_label("not a layer");
                self.error(d);
                return None;
            }
        };
        let cty = self.expr(callee);
        let layer = match cty {
            Ty::LayerCtor(r) => r,
            Ty::Error => return None,
            other => {
                let d = self
                    .err(
                        codes::NOT_A_MODEL,
                        callee.span,
                        format!("expected a layer, found {}", other.kind_name()),
                    )
                    .with_label(format!("this is `{other}`"));
                self.error(d);
                return None;
            }
        };
        let id = self.item_id(&layer);
        let hps = layer_hparams(self.db, id).list.clone();
        let values = self.bind_static_args(&layer.name, &hps, args, value.span)?;
        Some(LayerInst {
            layer,
            args: values,
        })
    }

    /// Checks that the parameters of `inst` have no negative dimension (E0306, e.g.
    /// `num_layers - 1` of a stack bound with `num_layers = 0`) and fit in memory's
    /// address space (E0310) with its hyperparameters; reports at `span`.
    pub fn check_param_sizes(&mut self, inst: &LayerInst, span: Span) {
        let Some(sig) = crate::items::layer_sig(self.db, self.item_id(&inst.layer)).as_ref() else {
            return;
        };
        let vals = int_args(inst);
        for p in &sig.params {
            let mut at = |a: &Atom| match a {
                Atom::Sym(s) => vals.get(&**s).cloned(),
                _ => None,
            };
            let mut dims = Vec::new();
            for d in p.ty.shape.0.iter() {
                match d {
                    crate::ty::DimItem::Dim(d) => match d.substitute(&mut at) {
                        Some(v) if v.as_const().is_some_and(|v| v < 0) => {
                            self.negative_dim(inst, &p.name, d, &v, span);
                            return;
                        }
                        Some(d) => dims.push(d),
                        None => return,
                    },
                    crate::ty::DimItem::Pack(_) => return,
                }
            }
            let t = TensorTy {
                dtype: p.ty.dtype,
                shape: crate::ty::Shape::from_dims(dims),
            };
            let what = format!("the parameter `{}` of `{}`", p.name, inst.layer.name);
            if self.too_large(&t, span, &what) {
                return;
            }
        }
    }

    /// E0306 at `span`: `inst`'s hyperparameters make dimension `d` of its parameter
    /// `param` the negative `v`.
    fn negative_dim(&mut self, inst: &LayerInst, param: &str, d: &Dim, v: &Dim, span: Span) {
        let given = given_args(inst, &[d]);
        let e = self
            .err(
                codes::BAD_DIM,
                span,
                format!(
                    "`{}` gives its parameter `{param}` the negative dimension `{d}`",
                    inst.layer.name
                ),
            )
            .with_label(format!("`{d}` is `{v}` here"))
            .with_note(format!("here {}", given.join(" and ")))
            .with_help("every dimension of a parameter must be 0 or more");
        self.error(e);
    }

    /// Checks that the quotients in the parameter shapes of `inst` (`inp / groups` of
    /// `Conv2d`) are whole with its hyperparameters; reports at `span` otherwise.
    pub fn check_quotients(&mut self, inst: &LayerInst, span: Span) {
        let Some(sig) = crate::items::layer_sig(self.db, self.item_id(&inst.layer)).as_ref() else {
            return;
        };
        let vals = int_args(inst);
        for p in &sig.params {
            for (n, d) in &p.divisions {
                let mut at = |a: &Atom| match a {
                    Atom::Sym(s) => vals.get(&**s).cloned(),
                    _ => None,
                };
                let (Some(nv), Some(dv)) = (n.substitute(&mut at), d.substitute(&mut at)) else {
                    continue;
                };
                if nv.quotient(&dv).is_some() {
                    continue;
                }
                let given = given_args(inst, &[n, d]);
                let e = self
                    .err(
                        codes::BAD_DIM,
                        span,
                        format!(
                            "`{}` needs `{d}` to divide `{n}` (for its parameter `{}`)",
                            inst.layer.name, p.name
                        ),
                    )
                    .with_label(format!("`{nv}` is not divisible by `{dv}`"))
                    .with_note(format!("here {}", given.join(" and ")));
                self.error(e);
                return;
            }
        }
    }

    /// Matches call arguments against hyperparameters; every one must be static.
    pub fn bind_static_args(
        &mut self,
        callee: &str,
        hps: &[HParamSig],
        args: &[ast::Arg],
        call_span: Span,
    ) -> Option<Vec<(Arc<str>, Static)>> {
        self.bind_static_args_as(callee, hps, args, call_span, "hyperparameter")
    }

    /// [`Checker::bind_static_args`], calling the parameters `noun` in messages
    /// (`argument` for settings such as `adam(...)`).
    pub fn bind_static_args_as(
        &mut self,
        callee: &str,
        hps: &[HParamSig],
        args: &[ast::Arg],
        call_span: Span,
        noun: &str,
    ) -> Option<Vec<(Arc<str>, Static)>> {
        let mut slots: Vec<Option<(Static, Span)>> = vec![None; hps.len()];
        let mut ok = true;
        let mut positional = 0;
        let mut seen_named = false;
        for a in args {
            let index = match &a.name {
                Some(n) => {
                    seen_named = true;
                    match hps.iter().position(|h| *h.name == *n.text) {
                        Some(i) => i,
                        None => {
                            let mut d = self
                                .err(
                                    codes::UNKNOWN_NAMED_ARG,
                                    n.span,
                                    format!("`{callee}` has no {noun} `{}`", n.text),
                                )
                                .with_label("unknown name");
                            let names = hps.iter().map(|h| &*h.name);
                            if let Some(s) = crate::suggest::closest(&n.text, names) {
                                d = d.with_help(format!("did you mean `{s}`?"));
                            }
                            self.error(d);
                            ok = false;
                            continue;
                        }
                    }
                }
                None => {
                    if seen_named {
                        let d = self
                            .err(
                                codes::DUPLICATE_ARG,
                                a.value.span,
                                "positional argument after a named one",
                            )
                            .with_label("move it before the named arguments");
                        self.error(d);
                        ok = false;
                        continue;
                    }
                    positional += 1;
                    if positional > hps.len() {
                        let d = self
                            .err(
                                codes::ARG_COUNT,
                                a.value.span,
                                format!(
                                    "`{callee}` takes {} argument{} but {} were given",
                                    hps.len(),
                                    plural(hps.len()),
                                    args.iter().filter(|a| a.name.is_none()).count()
                                ),
                            )
                            .with_label("unexpected argument");
                        self.error(d);
                        ok = false;
                        continue;
                    }
                    positional - 1
                }
            };
            let ty = self.expr(&a.value);
            if let Some(v) = self.forwarded_hparam(&a.value, &ty, hps[index].kind) {
                if slots[index].is_none() {
                    slots[index] = Some((v, a.value.span));
                    continue;
                }
            }
            if let Some((_, prev)) = &slots[index] {
                let d = self
                    .err(
                        codes::DUPLICATE_ARG,
                        a.value.span,
                        format!("`{}` is given twice", hps[index].name),
                    )
                    .with_label("given again")
                    .with_secondary(&self.fname.clone(), *prev, "first given here");
                self.error(d);
                ok = false;
                continue;
            }
            let what = format!("{noun} `{}`", hps[index].name);
            match self.static_of_kind(&ty, hps[index].kind, a.value.span, &what) {
                Some(v) => slots[index] = Some((v, a.value.span)),
                None => ok = false,
            }
        }
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for (h, s) in hps.iter().zip(slots) {
            match (s, &h.default) {
                (Some((v, _)), _) => out.push((h.name.clone(), v)),
                (None, Some(d)) => out.push((h.name.clone(), d.clone())),
                (None, None) => missing.push(h),
            }
        }
        if !missing.is_empty() && ok {
            let names: Vec<String> = missing.iter().map(|h| format!("`{}`", h.name)).collect();
            let d = self
                .err(
                    codes::MISSING_ARG,
                    call_span,
                    format!(
                        "`{callee}` is missing {} {}",
                        if missing.len() == 1 {
                            noun.to_string()
                        } else {
                            format!("{noun}s")
                        },
                        names.join(", ")
                    ),
                )
                .with_label(format!(
                    "expected {} argument{}",
                    hps.len(),
                    plural(hps.len())
                ));
            self.error(d);
            return None;
        }
        ok.then_some(out)
    }

    /// An enclosing layer's hyperparameter passed on by name to a sub-layer (`Inner(p)`),
    /// when its value is symbolic: it becomes [`Static::Param`].
    fn forwarded_hparam(&self, e: &Expr, ty: &Ty, kind: StaticKind) -> Option<Static> {
        let ExprKind::Name(n) = &e.kind else {
            return None;
        };
        let layer = self.layer.as_ref()?;
        if self.scopes.iter().any(|s| s.contains_key(n.text.as_str()))
            || !layer.names.contains_key(n.text.as_str())
        {
            return None;
        }
        let fits = match (kind, ty) {
            (StaticKind::Int, Ty::Int(None)) => true,
            (StaticKind::Float, Ty::Float(None)) => true,
            (StaticKind::Float, Ty::Int(Some(d))) => d.as_const().is_none(),
            (StaticKind::Bool, Ty::Bool(None)) | (StaticKind::Str, Ty::Str(None)) => true,
            _ => false,
        };
        fits.then(|| Static::Param(Arc::from(n.text.as_str())))
    }

    /// Resolves a written type. Element type defaults to `f32`.
    pub fn type_expr(&mut self, t: &ast::TypeExpr, mode: DimMode) -> Ty {
        match &t.kind {
            TypeExprKind::Tuple(ts) => {
                Ty::Tuple(ts.iter().map(|t| self.type_expr(t, mode)).collect())
            }
            TypeExprKind::Named(n) => {
                if let Some(k) = StaticKind::from_name(&n.text) {
                    return match k {
                        StaticKind::Int => Ty::Int(None),
                        StaticKind::Float => Ty::Float(None),
                        StaticKind::Bool => Ty::Bool(None),
                        StaticKind::Str => Ty::Str(None),
                    };
                }
                match self.dtype(n) {
                    Some(d) => Ty::scalar(d),
                    None => Ty::Error,
                }
            }
            TypeExprKind::Tensor { dtype, dims } => {
                let dt = match dtype {
                    Some(n) => match self.dtype(n) {
                        Some(d) => d,
                        None => {
                            // Still introduce the dimensions, so later uses resolve.
                            for d in dims {
                                match d {
                                    DimExpr::Pack(p) if mode == DimMode::Introduce => {
                                        let name: Arc<str> = Arc::from(p.text.as_str());
                                        if !self.packs.contains(&name) {
                                            self.packs.push(name);
                                        }
                                    }
                                    DimExpr::Expr(e) => {
                                        let saved = self.diags.len();
                                        let _ = self.dim_expr(e, mode);
                                        self.diags.truncate(saved);
                                    }
                                    DimExpr::Pack(_) => {}
                                }
                            }
                            return Ty::Error;
                        }
                    },
                    None => DType::F32,
                };
                let mut items = Vec::new();
                let mut pack_seen: Option<Span> = None;
                for d in dims {
                    match d {
                        DimExpr::Pack(p) => {
                            if let Some(prev) = pack_seen {
                                let e = self
                                    .err(
                                        codes::BAD_DIM,
                                        p.span,
                                        "a shape can have at most one pack",
                                    )
                                    .with_label("second pack")
                                    .with_secondary(&self.fname.clone(), prev, "first pack");
                                self.error(e);
                                return Ty::Error;
                            }
                            pack_seen = Some(p.span);
                            let name: Arc<str> = Arc::from(p.text.as_str());
                            if !self.packs.contains(&name) {
                                if mode == DimMode::Strict {
                                    self.unknown_name(&p.text, p.span, "pack");
                                    return Ty::Error;
                                }
                                self.packs.push(name.clone());
                            }
                            items.push(DimItem::Pack(name));
                        }
                        DimExpr::Expr(e) => match self.dim_expr(e, mode) {
                            Some(d) => items.push(DimItem::Dim(d)),
                            None => return Ty::Error,
                        },
                    }
                }
                Ty::tensor(dt, Shape(items))
            }
        }
    }

    fn dtype(&mut self, n: &ast::Name) -> Option<DType> {
        let d = DType::from_name(&n.text);
        if d.is_none() {
            let mut e = self
                .err(
                    codes::UNKNOWN_TYPE,
                    n.span,
                    format!("unknown type `{}`", n.text),
                )
                .with_label("not a type");
            let alias = match n.text.as_str() {
                "float" | "float32" | "single" => Some("f32"),
                "double" | "float64" => Some("f64"),
                "half" | "float16" => Some("f16"),
                "int" | "int32" => Some("i32"),
                "long" | "int64" => Some("i64"),
                "uint8" | "byte" => Some("u8"),
                "boolean" => Some("bool"),
                _ => None,
            };
            let names = DType::ALL.map(|d| d.name());
            if let Some(a) = alias {
                e = e.with_help(format!("the element type is written `{a}`"));
            } else if let Some(s) = crate::suggest::closest(
                &n.text,
                names.into_iter().chain(["Int", "Float", "Bool", "Str"]),
            ) {
                e = e.with_help(format!("did you mean `{s}`?"));
            } else {
                e = e.with_help(
                    "element types are f32, f16, bf16, f64, i8, i16, i32, i64, u8 and bool",
                );
            }
            self.error(e);
        }
        d
    }

    /// Evaluates a dimension expression in a type.
    pub fn dim_expr(&mut self, e: &Expr, mode: DimMode) -> Option<Dim> {
        match &e.kind {
            ExprKind::Int(v) => {
                if *v < 0 {
                    let d = self
                        .err(
                            codes::BAD_DIM,
                            e.span,
                            format!("dimension `{v}` is negative"),
                        )
                        .with_label("dimensions are at least 0");
                    self.error(d);
                    return None;
                }
                Some(Dim::constant(*v))
            }
            ExprKind::Name(n) => {
                let layer_ty = self.lookup(&n.text).map(|l| l.ty);
                match layer_ty {
                    Some(Ty::Int(Some(d))) => Some(d),
                    Some(Ty::Int(None)) => {
                        let d = self
                            .err(
                                codes::NOT_STATIC,
                                e.span,
                                format!("`{}` is not known at compile time", n.text),
                            )
                            .with_label("dimensions must be static");
                        self.error(d);
                        None
                    }
                    Some(Ty::Error) => None,
                    Some(other) if !matches!(other, Ty::Builtin(_)) => {
                        let d = self
                            .err(
                                codes::BAD_DIM,
                                e.span,
                                format!("`{}` is {}, not a dimension", n.text, other.kind_name()),
                            )
                            .with_label("dimensions are Ints");
                        self.error(d);
                        None
                    }
                    _ if mode == DimMode::Introduce => {
                        let name: Arc<str> = Arc::from(n.text.as_str());
                        self.dims.push(name);
                        Some(Dim::sym(&n.text))
                    }
                    _ => {
                        self.unknown_name(&n.text, n.span, "dimension");
                        if self.layer.is_some() || !self.dims.is_empty() {
                            if let Some(last) = self.diags.last_mut() {
                                if last.help.is_none() {
                                    last.help = Some("symbolic dimensions are introduced by a function's parameter types".into());
                                }
                            }
                        }
                        None
                    }
                }
            }
            ExprKind::Binary { op, lhs, rhs, .. } => {
                let a = self.dim_expr(lhs, mode)?;
                let b = self.dim_expr(rhs, mode)?;
                let r = match op {
                    ast::BinOp::Add => a.checked_add(&b),
                    ast::BinOp::Sub => a.checked_sub(&b),
                    ast::BinOp::Mul => a.checked_mul(&b),
                    ast::BinOp::Div if self.quotients => {
                        if a.checked_div(&b).is_none() {
                            self.divisions.push((a.clone(), b.clone()));
                        }
                        a.quotient(&b)
                    }
                    ast::BinOp::Div => a.checked_div(&b),
                    _ => {
                        let d = self
                            .err(
                                codes::BAD_DIM,
                                e.span,
                                format!("`{}` cannot be used in a dimension", op.symbol()),
                            )
                            .with_label("dimensions use `+`, `-`, `*` and exact `/`");
                        self.error(d);
                        return None;
                    }
                };
                if r.is_none() {
                    let d = self
                        .err(
                            codes::BAD_DIM,
                            e.span,
                            format!("`{a} {} {b}` is not an exact dimension", op.symbol()),
                        )
                        .with_label("division must be exact and the result must fit in 64 bits");
                    self.error(d);
                }
                if let Some(v) = r.as_ref().and_then(|d| d.as_const()).filter(|v| *v < 0) {
                    let d = self
                        .err(
                            codes::BAD_DIM,
                            e.span,
                            format!("dimension `{v}` is negative"),
                        )
                        .with_label("dimensions are at least 0");
                    self.error(d);
                    return None;
                }
                r
            }
            ExprKind::Call { callee, args } if matches!(&callee.kind, ExprKind::Name(n) if n.text == "size") => {
                match args.as_slice() {
                    [ast::Arg {
                        name: None,
                        value:
                            Expr {
                                kind: ExprKind::Name(p),
                                ..
                            },
                    }] if self.packs.iter().any(|q| **q == *p.text) => {
                        Some(Dim::atom(Atom::PackSize(Arc::from(p.text.as_str()))))
                    }
                    _ => {
                        let d = self
                            .err(
                                codes::BAD_DIM,
                                e.span,
                                "`size` takes the name of a pack, e.g. `size(S)` for `..S`",
                            )
                            .with_label("not a pack");
                        self.error(d);
                        None
                    }
                }
            }
            _ => {
                let d = self
                    .err(codes::BAD_DIM, e.span, "invalid dimension")
                    .with_label("expected an integer, a hyperparameter, a symbolic dimension or arithmetic on them");
                self.error(d);
                None
            }
        }
    }

    /// The layer signature behind an instance.
    pub fn sig_of(&self, inst: &LayerInst) -> Option<&'db items::LayerSig> {
        layer_sig(self.db, self.item_id(&inst.layer)).as_ref()
    }
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Tensor type shorthand used in messages.
pub fn show(t: &TensorTy) -> String {
    t.to_string()
}

/// `` `name = value` `` of each hyperparameter of `inst` that `dims` mention (what a
/// note about their values lists).
fn given_args(inst: &LayerInst, dims: &[&Dim]) -> Vec<String> {
    inst.args
        .iter()
        .filter(|(k, _)| {
            dims.iter()
                .any(|d| d.atoms().any(|a| matches!(a, Atom::Sym(s) if s == k)))
        })
        .map(|(k, v)| format!("`{k} = {v}`"))
        .collect()
}

/// The integer hyperparameters an instance was given, by name.
fn int_args(inst: &LayerInst) -> HashMap<&str, Dim> {
    inst.args
        .iter()
        .filter_map(|(n, v)| match v {
            Static::Int(d) => Some((&**n, d.clone())),
            _ => None,
        })
        .collect()
}
