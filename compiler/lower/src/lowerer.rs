//! The lowering context: scopes of values, the current file and layer, the parameters
//! met so far, and name lookup (mirroring the checker's order: locals, layer members,
//! the file's declarations, builtins).

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use dnnc_ir::{DType, Graph, NodeId, Op, Port};
use dnnc_sema::items::{layer_sig, ItemId};
use dnnc_sema::scope::{file_scope, DefKind};
use dnnc_sema::settings::Setting;
use dnnc_sema::ty::Static;
use dnnc_sema::{Db, SourceFile};
use dnnc_settings::Init;

use crate::emit::{Emitter, Res};
use crate::value::{LayerVal, Val};

/// A trainable (or frozen) parameter met while lowering.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// The binding path: `fc1.W`.
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub init: Init,
    pub frozen: bool,
    /// A `buffer`: never trained; the training step stores what `assign` gave it.
    pub buffer: bool,
    /// Load from this safetensors file, under this tensor name.
    pub from: Option<(PathBuf, String)>,
    /// The standard-library layer that declares it (`Dense`, `BatchNorm2d`, ...), or
    /// `None` for a layer of the user's: how `dnnc convert` names it for PyTorch.
    pub std_layer: Option<String>,
}

/// A call of a standard-library layer's `forward` (what an exporter can write as one
/// op: ONNX's `LSTM`, `GRU`, `RNN`).
#[derive(Clone, Debug)]
pub struct LayerCall {
    /// The layer's declaration in the standard library: `LSTM`.
    pub layer: String,
    /// The instance's binding path: `lstm`; its parameters are `PATH.NAME`.
    pub path: String,
    /// The tensor arguments.
    pub inputs: Vec<NodeId>,
    /// The tensors of the result, flattened in order: `(seq, (h, c))` is
    /// `[seq, h, c]`.
    pub outputs: Vec<NodeId>,
}

pub struct Lowerer<'db, 'g> {
    pub db: &'db dyn Db,
    pub em: Emitter<'g>,
    /// `training` as seen by the program: true in the training step.
    pub training: bool,
    pub scopes: Vec<HashMap<Arc<str>, Val>>,
    pub file: SourceFile,
    pub layer: Option<Rc<LayerVal>>,
    /// Sub-layer instances by path, so each is created once.
    pub layers: HashMap<String, Rc<LayerVal>>,
    pub params: Vec<ParamInfo>,
    param_nodes: HashMap<String, NodeId>,
    key: Option<NodeId>,
    /// Nesting of calls, to report runaway recursion instead of overflowing.
    pub call_depth: usize,
    /// Inside a dataset: the data files met so far (loaders are allowed).
    pub loaders: Option<Vec<crate::builtins::LoaderUse>>,
    /// When `Some`: the result of every layer instance's `forward`, by the instance's
    /// path (`conv2`, `block1.conv`), in call order — the feature maps Grad-CAM reads.
    pub taps: Option<Vec<(String, NodeId)>>,
    /// When `Some`: the tensor arguments of every call of the train block's model
    /// itself (the instance at the root path) — what an attack perturbs.
    pub model_inputs: Option<Vec<NodeId>>,
    /// When `Some`: every call of a standard-library layer's `forward`.
    pub calls: Option<Vec<LayerCall>>,
}

impl<'db, 'g> Lowerer<'db, 'g> {
    pub fn new(
        db: &'db dyn Db,
        g: &'g mut Graph,
        file: SourceFile,
        training: bool,
    ) -> Lowerer<'db, 'g> {
        Lowerer {
            db,
            em: Emitter::new(g),
            training,
            scopes: vec![HashMap::new()],
            file,
            layer: None,
            layers: HashMap::new(),
            params: Vec::new(),
            param_nodes: HashMap::new(),
            key: None,
            call_depth: 0,
            loaders: None,
            taps: None,
            model_inputs: None,
            calls: None,
        }
    }

    pub fn bind(&mut self, name: &str, v: Val) {
        if let Some(s) = self.scopes.last_mut() {
            s.insert(Arc::from(name), v);
        }
    }

    /// The random key input, created on first use.
    pub fn rng_key(&mut self) -> Res<NodeId> {
        if let Some(k) = self.key {
            return Ok(k);
        }
        let k = self.em.add(
            Op::Input {
                name: Port::RngKey.name().into(),
                dtype: DType::I64,
                shape: vec![],
            },
            &[],
        )?;
        self.key = Some(k);
        Ok(k)
    }

    pub fn lookup(&mut self, name: &str) -> Res<Val> {
        for s in self.scopes.iter().rev() {
            if let Some(v) = s.get(name) {
                return Ok(v.clone());
            }
        }
        if let Some(layer) = self.layer.clone() {
            if let Some(v) = self.layer_member(&layer, name)? {
                return Ok(v);
            }
        }
        if let Some(def) = file_scope(self.db, self.file).names.get(name) {
            return match def.kind {
                DefKind::Layer => Ok(Val::LayerCtor(def.file, def.index)),
                DefKind::Fn => Ok(Val::Func(def.file, def.index)),
                _ => Err(format!("`{name}` cannot be used as a value here").into()),
            };
        }
        if name == "training" {
            return Ok(Val::Bool(self.training));
        }
        if let Some(d) = crate::builtins::dtype(name) {
            return Ok(Val::DType(d));
        }
        if let Some(b) = crate::builtins::name(name) {
            return Ok(Val::Builtin(b));
        }
        Err(format!("cannot find `{name}`").into())
    }

    /// A hyperparameter, parameter, sub-layer or method of `layer`.
    pub fn layer_member(&mut self, layer: &Rc<LayerVal>, name: &str) -> Res<Option<Val>> {
        if let Some(v) = layer.hparams.get(name) {
            return Ok(Some(v.clone()));
        }
        let id = ItemId::new(self.db, layer.file, layer.index);
        let Some(sig) = layer_sig(self.db, id).as_ref() else {
            return Err(format!("layer at index {} did not check", layer.index).into());
        };
        if let Some(p) = sig.params.iter().find(|p| &*p.name == name) {
            let full = join(&layer.path, name);
            if let Some(&n) = self.param_nodes.get(&full) {
                return Ok(Some(Val::T(n)));
            }
            let mut shape = Vec::new();
            for item in &p.ty.shape.0 {
                let dnnc_sema::ty::DimItem::Dim(d) = item else {
                    return Err(format!("parameter `{full}` has a pack in its shape").into());
                };
                shape.push(
                    self.concrete_dim(d, layer)
                        .map_err(|e| format!("parameter `{full}`: {e}"))?,
                );
            }
            let dtype = p.ty.dtype;
            let node = self.em.add(
                Op::State {
                    name: full.clone(),
                    dtype,
                    shape: shape.clone(),
                },
                &[],
            )?;
            self.param_nodes.insert(full.clone(), node);
            let init = instance_init(p.init.as_ref(), layer)
                .map_err(|e| format!("parameter `{full}`: {e}"))?;
            self.params.push(ParamInfo {
                name: full,
                dtype,
                shape,
                init,
                frozen: layer.frozen || p.frozen,
                buffer: p.buffer,
                from: layer
                    .from
                    .as_ref()
                    .map(|(f, prefix)| (f.clone(), join(prefix, name))),
                std_layer: self.std_layer_name(layer),
            });
            return Ok(Some(Val::T(node)));
        }
        if let Some(sub) = sig.subs.iter().find(|s| &*s.name == name) {
            let path = join(&layer.path, name);
            if let Some(l) = self.layers.get(&path) {
                return Ok(Some(Val::Layer(l.clone())));
            }
            let inst = self.instantiate_sub(layer, &sub.name, &path)?;
            self.layers.insert(path, inst.clone());
            return Ok(Some(Val::Layer(inst)));
        }
        if sig.method(name).is_some() {
            return Ok(Some(Val::Method(layer.clone(), Arc::from(name))));
        }
        Ok(None)
    }

    /// `assign(buffer, value)`: in the training step, the state `buffer` (a state node)
    /// ends the step holding `value`, and later reads in this graph see `value`; in
    /// other graphs, and for buffers of frozen layers, nothing changes.
    pub fn assign(&mut self, buffer: NodeId, value: NodeId) -> Res<()> {
        let Op::State { name, .. } = &self.em.g.node(buffer).op else {
            return Err("`assign` must name a buffer".into());
        };
        let name = name.clone();
        let Some(info) = self.params.iter().find(|p| p.name == name) else {
            return Err(format!("`{name}` is not a buffer").into());
        };
        if !info.buffer {
            return Err(format!("`{name}` is a parameter, not a buffer").into());
        }
        if self.training && !info.frozen {
            self.em.g.add_update(name.clone(), value);
            self.param_nodes.insert(name, value);
        }
        Ok(())
    }

    /// The name of `layer`'s declaration if the standard library declares it.
    pub fn std_layer_name(&self, layer: &LayerVal) -> Option<String> {
        if !layer.file.path(self.db).starts_with("<std>") {
            return None;
        }
        match &dnnc_sema::items::item_ast(self.db, ItemId::new(self.db, layer.file, layer.index))
            .kind
        {
            dnnc_syntax::ast::ItemKind::Layer(d) => Some(d.name.text.clone()),
            _ => None,
        }
    }

    /// A dimension of a declared parameter shape, with `layer`'s hyperparameters.
    fn concrete_dim(&self, d: &dnnc_sema::dim::Dim, layer: &LayerVal) -> Res<usize> {
        let mut missing = None;
        let v = d.substitute(&mut |a| match a {
            dnnc_sema::dim::Atom::Sym(n) => match layer.hparams.get(n) {
                Some(Val::Int(v)) => Some(dnnc_sema::dim::Dim::constant(*v)),
                _ => {
                    missing = Some(n.to_string());
                    None
                }
            },
            _ => None,
        });
        match (v.and_then(|v| v.as_const()), missing) {
            (Some(c), _) if c >= 0 => Ok(c as usize),
            (_, Some(m)) => Err(format!("dimension `{d}` needs `{m}`").into()),
            _ => Err(format!(
                "dimension `{d}` is not a non-negative whole number with these hyperparameters"
            )
            .into()),
        }
    }

    /// Creates the sub-layer `name` of `parent` from its binding.
    fn instantiate_sub(
        &mut self,
        parent: &Rc<LayerVal>,
        name: &str,
        path: &str,
    ) -> Res<Rc<LayerVal>> {
        let item =
            dnnc_sema::items::item_ast(self.db, ItemId::new(self.db, parent.file, parent.index));
        let dnnc_syntax::ast::ItemKind::Layer(def) = &item.kind else {
            return Err("not a layer".into());
        };
        let binding = def
            .members
            .iter()
            .find_map(|m| match &m.kind {
                dnnc_syntax::ast::MemberKind::SubLayer(b) if b.name.text == name => Some(b.clone()),
                _ => None,
            })
            .ok_or_else(|| format!("no sub-layer `{name}`"))?;
        // Evaluate the binding in the parent's context.
        let saved = self.enter(parent.file, Some(parent.clone()));
        let r = self.instance_from_binding(
            &binding.value,
            path,
            parent.frozen || binding.frozen.is_some(),
            binding.from.as_ref().map(|s| {
                (
                    s.value.clone(),
                    binding.at.as_ref().map(|a| a.value.clone()),
                )
            }),
            parent,
        );
        self.leave(saved);
        r
    }

    /// `Layer(args)` evaluated here, as the instance at `path`.
    pub fn instance_from_binding(
        &mut self,
        value: &dnnc_syntax::ast::Expr,
        path: &str,
        frozen: bool,
        from: Option<(String, Option<String>)>,
        parent: &LayerVal,
    ) -> Res<Rc<LayerVal>> {
        use dnnc_syntax::ast::ExprKind;
        let (callee, args) = match &value.kind {
            ExprKind::Call { callee, args } => (&**callee, args.as_slice()),
            _ => (value, &[][..]),
        };
        let Val::LayerCtor(file, index) = crate::eval::expr(self, callee)? else {
            return Err(format!("`{path}` is not bound to a layer").into());
        };
        let hps = dnnc_sema::items::layer_hparams(self.db, ItemId::new(self.db, file, index))
            .list
            .clone();
        let mut vals = Vec::new();
        for a in args {
            vals.push((
                a.name.as_ref().map(|n| n.text.clone()),
                crate::eval::expr(self, &a.value)?,
            ));
        }
        let mut hparams = HashMap::new();
        let mut positional = 0;
        for (n, v) in vals {
            let key = match n {
                Some(n) => Arc::from(n.as_str()),
                None => {
                    let h = hps.get(positional).ok_or("too many hyperparameters")?;
                    positional += 1;
                    h.name.clone()
                }
            };
            hparams.insert(key, v);
        }
        for h in &hps {
            if !hparams.contains_key(&h.name) {
                let d = h
                    .default
                    .as_ref()
                    .ok_or_else(|| format!("missing hyperparameter `{}`", h.name))?;
                hparams.insert(h.name.clone(), static_val(d, parent)?);
            }
        }
        // A Float hyperparameter given as an Int.
        for h in &hps {
            if h.kind == dnnc_sema::items::StaticKind::Float {
                if let Some(Val::Int(i)) = hparams.get(&h.name) {
                    let f = *i as f64;
                    hparams.insert(h.name.clone(), Val::Float(f));
                }
            }
        }
        let from = match (from, &parent.from) {
            (Some((f, at)), _) => {
                let dir = self
                    .file
                    .path(self.db)
                    .parent()
                    .map(PathBuf::from)
                    .unwrap_or_default();
                Some((dir.join(f), at.unwrap_or_default()))
            }
            (None, Some((f, prefix))) => {
                let leaf = path.rsplit('.').next().unwrap_or(path);
                Some((f.clone(), join(prefix, leaf)))
            }
            (None, None) => None,
        };
        Ok(Rc::new(LayerVal {
            file,
            index,
            path: path.to_string(),
            hparams,
            frozen,
            from,
        }))
    }

    /// Switches to another file and layer with fresh scopes; returns what to restore.
    /// Inside a frozen layer `training` is false (Keras's rule for frozen layers:
    /// dropout is off, batch norm uses and keeps its running statistics), and so it
    /// stays in the functions that layer calls.
    pub fn enter(&mut self, file: SourceFile, layer: Option<Rc<LayerVal>>) -> Saved {
        let frozen = layer.as_ref().is_some_and(|l| l.frozen);
        let training = self.training && !frozen;
        Saved {
            file: std::mem::replace(&mut self.file, file),
            layer: std::mem::replace(&mut self.layer, layer),
            scopes: std::mem::replace(&mut self.scopes, vec![HashMap::new()]),
            training: std::mem::replace(&mut self.training, training),
        }
    }

    pub fn leave(&mut self, s: Saved) {
        self.file = s.file;
        self.layer = s.layer;
        self.scopes = s.scopes;
        self.training = s.training;
    }
}

pub struct Saved {
    file: SourceFile,
    layer: Option<Rc<LayerVal>>,
    scopes: Vec<HashMap<Arc<str>, Val>>,
    training: bool,
}

pub fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}.{b}")
    }
}

/// The initialiser of a parameter of `layer`: its setting with the layer's
/// hyperparameters in place of symbolic arguments (`constant(value = v)`), typed.
fn instance_init(init: Option<&Setting>, layer: &LayerVal) -> Res<Init> {
    let Some(init) = init else {
        return Ok(dnnc_sema::settings::initializer(None)?);
    };
    let mut s = init.clone();
    for (_, v) in &mut s.args {
        if let Static::Param(p) = v {
            *v = match layer.hparams.get(p) {
                Some(Val::Float(x)) => Static::Float(*x),
                Some(Val::Int(i)) => Static::Int(dnnc_sema::dim::Dim::constant(*i)),
                Some(Val::Bool(b)) => Static::Bool(*b),
                Some(Val::Str(t)) => Static::Str(t.clone()),
                _ => return Err(format!("unknown hyperparameter `{p}`").into()),
            };
        }
    }
    Ok(dnnc_sema::settings::initializer(Some(&s))?)
}

/// A checked static value as a lowering value; `Param` refers to the parent's.
pub fn static_val(s: &dnnc_sema::ty::Static, parent: &LayerVal) -> Res<Val> {
    use dnnc_sema::ty::Static;
    Ok(match s {
        Static::Int(d) => Val::Int(
            d.as_const()
                .ok_or_else(|| format!("`{d}` is not a constant"))?,
        ),
        Static::Float(x) => Val::Float(*x),
        Static::Bool(b) => Val::Bool(*b),
        Static::Str(s) => Val::Str(s.clone()),
        Static::Param(p) => parent
            .hparams
            .get(p)
            .cloned()
            .ok_or_else(|| format!("unknown hyperparameter `{p}`"))?,
    })
}
