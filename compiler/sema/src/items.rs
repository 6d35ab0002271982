//! Per-declaration queries: signatures that other declarations depend on.
//!
//! A layer's hyperparameters ([`layer_hparams`]) are a query of their own so that a
//! layer containing itself is an error (E0106) rather than a query cycle. A layer's
//! signature ([`layer_sig`]) adds its params, sub-layer instances and method
//! signatures; a function's signature is [`fn_sig`]. Bodies are checked separately in
//! [`crate::check::check_item`], which only reads other declarations' signatures.

use std::sync::Arc;

use dnnc_diagnostics::{Diagnostic, Span};
use dnnc_syntax::ast::{self, ItemKind};

use crate::checker::{Checker, LayerScope};
use crate::db::{Db, SourceFile};
use crate::scope::parse;
use crate::ty::{LayerInst, Static, TensorTy, Ty};

/// One declaration of one file.
#[salsa::interned]
pub struct ItemId<'db> {
    #[returns(copy)]
    pub file: SourceFile,
    #[returns(copy)]
    pub index: u32,
}

/// The syntax of an item.
pub fn item_ast<'db>(db: &'db dyn Db, item: ItemId<'db>) -> &'db ast::Item {
    &parse(db, item.file(db)).module.items[item.index(db) as usize]
}

/// The kind of a static hyperparameter or function parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StaticKind {
    Int,
    Float,
    Bool,
    Str,
}

impl StaticKind {
    pub fn from_name(n: &str) -> Option<StaticKind> {
        Some(match n {
            "Int" => StaticKind::Int,
            "Float" => StaticKind::Float,
            "Bool" => StaticKind::Bool,
            "Str" => StaticKind::Str,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            StaticKind::Int => "Int",
            StaticKind::Float => "Float",
            StaticKind::Bool => "Bool",
            StaticKind::Str => "Str",
        }
    }

    /// The symbolic value a hyperparameter of this kind has inside its layer.
    pub fn symbolic(self, name: &str) -> Ty {
        match self {
            StaticKind::Int => Ty::Int(Some(crate::dim::Dim::sym(name))),
            StaticKind::Float => Ty::Float(None),
            StaticKind::Bool => Ty::Bool(None),
            StaticKind::Str => Ty::Str(None),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct HParamSig {
    pub name: Arc<str>,
    pub kind: StaticKind,
    pub default: Option<Static>,
    pub span: Span,
    pub doc: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct HParams {
    pub list: Vec<HParamSig>,
    pub diagnostics: Vec<Diagnostic>,
}

#[salsa::tracked(returns(ref))]
pub fn layer_hparams<'db>(db: &'db dyn Db, item: ItemId<'db>) -> HParams {
    let ItemKind::Layer(def) = &item_ast(db, item).kind else {
        return HParams::default();
    };
    let mut cx = Checker::new(db, item.file(db));
    let list = cx.hparams(&def.hparams);
    HParams {
        list,
        diagnostics: cx.diags,
    }
}

/// A function's parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSig {
    pub name: Arc<str>,
    /// A tensor type over the function's symbolic dimensions, or a static kind.
    pub ty: Ty,
    pub default: Option<Static>,
    pub span: Span,
}

/// A function's or method's signature.
#[derive(Clone, Debug, PartialEq)]
pub struct FnSig {
    pub name: Arc<str>,
    pub file: SourceFile,
    pub params: Vec<ParamSig>,
    pub ret: Ty,
    pub ret_span: Span,
    /// Symbolic dimensions and packs introduced by the parameter types.
    pub dims: Vec<Arc<str>>,
    pub packs: Vec<Arc<str>>,
    pub span: Span,
    pub doc: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FnSigResult {
    pub sig: Option<FnSig>,
    pub diagnostics: Vec<Diagnostic>,
}

#[salsa::tracked(returns(ref))]
pub fn fn_sig<'db>(db: &'db dyn Db, item: ItemId<'db>) -> FnSigResult {
    let it = item_ast(db, item);
    let ItemKind::Fn(def) = &it.kind else {
        return FnSigResult {
            sig: None,
            diagnostics: Vec::new(),
        };
    };
    let mut cx = Checker::new(db, item.file(db));
    let sig = cx.fn_signature(def, it.doc.clone());
    FnSigResult {
        sig: Some(sig),
        diagnostics: cx.diags,
    }
}

/// A named parameter tensor of a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    pub name: Arc<str>,
    pub ty: TensorTy,
    /// The checked initialiser (`None` when it did not check).
    pub init: Option<crate::settings::Setting>,
    pub span: Span,
    pub frozen: bool,
    /// Declared with `buffer`: never trained; changed by `assign` in the training step.
    pub buffer: bool,
    /// Divisions of hyperparameters in the shape, `(n, d)`, checked at instantiation.
    pub divisions: Vec<(crate::dim::Dim, crate::dim::Dim)>,
    pub doc: Option<String>,
}

/// A sub-layer binding with its instance (`None` when it did not check).
#[derive(Clone, Debug, PartialEq)]
pub struct SubLayer {
    pub name: Arc<str>,
    pub inst: Option<LayerInst>,
    pub span: Span,
    pub from: Option<String>,
    /// The prefix of the `from` file's tensors (`from "f" at "body"`).
    pub at: Option<String>,
    pub frozen: bool,
    pub doc: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LayerSig {
    pub name: Arc<str>,
    pub is_model: bool,
    pub hparams: Vec<HParamSig>,
    pub params: Vec<ParamDecl>,
    pub subs: Vec<SubLayer>,
    pub methods: Vec<FnSig>,
    pub diagnostics: Vec<Diagnostic>,
}

impl LayerSig {
    pub fn method(&self, name: &str) -> Option<&FnSig> {
        self.methods.iter().find(|m| &*m.name == name)
    }
}

#[salsa::tracked(returns(ref))]
pub fn layer_sig<'db>(db: &'db dyn Db, item: ItemId<'db>) -> Option<LayerSig> {
    let it = item_ast(db, item);
    let ItemKind::Layer(def) = &it.kind else {
        return None;
    };
    let hp = layer_hparams(db, item);
    let mut cx = Checker::new(db, item.file(db));
    let layer = LayerScope::symbolic(&hp.list);
    cx.layer = Some(layer);
    let (params, subs, methods) = cx.layer_members(def);
    Some(LayerSig {
        name: Arc::from(def.name.text.as_str()),
        is_model: def.is_model,
        hparams: hp.list.clone(),
        params,
        subs,
        methods,
        diagnostics: cx.diags,
    })
}
