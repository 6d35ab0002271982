//! The states of a run — parameters, buffers, optimizer slots and counters — in one
//! store that every compiled graph of the run binds: the steps of a plan, their
//! batch-size variants and the evaluation graphs read and update the same tensors, so
//! nothing is copied between steps. Native backends bind `dnnc_exec::Store`'s blocks
//! (whose addresses never change); the interpreter reads and writes host tensors.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use dnnc_tensor::Tensor;

use crate::error::RunError;

/// A run's states (cheap to clone: a handle).
#[derive(Clone)]
pub enum StateStore {
    /// Blocks bound by native code.
    Native(dnnc_exec::Store),
    /// Host tensors, for the interpreter.
    Host(Rc<RefCell<HashMap<String, Tensor>>>),
}

impl StateStore {
    /// An empty store of the kind `native` backends (or the interpreter) bind.
    pub fn new(native: bool) -> StateStore {
        if native {
            StateStore::Native(dnnc_exec::Store::new())
        } else {
            StateStore::Host(Rc::default())
        }
    }

    /// Sets state `name` to `t`.
    pub fn set(&self, name: &str, t: &Tensor) -> Result<(), RunError> {
        match self {
            StateStore::Native(s) => Ok(s.set(name, t)?),
            StateStore::Host(h) => {
                h.borrow_mut().insert(name.to_string(), t.clone());
                Ok(())
            }
        }
    }

    /// Sets every state of `values`.
    pub fn set_all(&self, values: &HashMap<String, Tensor>) -> Result<(), RunError> {
        values.iter().try_for_each(|(n, t)| self.set(n, t))
    }

    /// The current value of state `name`.
    pub fn get(&self, name: &str) -> Option<Tensor> {
        match self {
            StateStore::Native(s) => s.get(name),
            StateStore::Host(h) => h.borrow().get(name).cloned(),
        }
    }

    /// Runs `f` on the elements of `f32` state `name`, in place, between steps (`f`
    /// cannot reach the store: it gets the elements only).
    pub fn with_f32_mut<R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut [f32]) -> R,
    ) -> Result<R, RunError> {
        match self {
            // SAFETY: the session runs its instances one at a time and calls this
            // between steps; `f` gets a slice, not the store.
            StateStore::Native(s) => Ok(unsafe { s.with_f32_mut(name, f) }?),
            StateStore::Host(h) => {
                let mut states = h.borrow_mut();
                let t = states.get_mut(name).ok_or_else(|| {
                    RunError::Internal(format!("state `{name}` is not in the store"))
                })?;
                match &mut t.data {
                    dnnc_tensor::Data::F32(v) => Ok(f(v)),
                    _ => Err(RunError::Internal(format!("state `{name}` is not f32"))),
                }
            }
        }
    }

    /// Whether the store holds state `name`.
    pub fn contains(&self, name: &str) -> bool {
        match self {
            StateStore::Native(s) => s.names().iter().any(|n| n == name),
            StateStore::Host(h) => h.borrow().contains_key(name),
        }
    }

    /// Every state's current value.
    pub fn snapshot(&self) -> HashMap<String, Tensor> {
        match self {
            StateStore::Native(s) => s.snapshot(),
            StateStore::Host(h) => h.borrow().clone(),
        }
    }
}
