//! The state store: one block per state (parameters, buffers, optimizer slots and
//! counters) that several instances bind by name, so the steps of a training plan,
//! their batch-size variants and the evaluation graphs read and update the same
//! memory without copying. A block never moves once made, so an instance (or a JIT
//! entry function) may keep its address for its whole life.
//!
//! Instances that share a store must run one at a time (the session and the C API run
//! a plan's steps in sequence); the store itself may be shared between threads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dnnc_ir::DType;
use dnnc_tensor::Tensor;

use crate::buffer::{Block, View};
use crate::error::ExecError;

/// One state's storage.
pub struct Slot {
    block: Block,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub len: usize,
}

// SAFETY: a slot is plain memory; who writes it when is the instances' schedule, and
// instances sharing a store run one at a time.
unsafe impl Send for Slot {}
unsafe impl Sync for Slot {}

impl Slot {
    pub fn view(&self) -> View {
        View {
            dtype: self.dtype,
            ptr: self.block.ptr(),
            len: self.len,
        }
    }
}

/// States by name, shared by the instances bound to it (cheap to clone: a handle).
#[derive(Clone, Default)]
pub struct Store {
    slots: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The slot of state `name`, made (zeroed) if the store has none yet; an existing
    /// slot must have this type and shape.
    pub fn bind(&self, name: &str, dtype: DType, shape: &[usize]) -> Result<Arc<Slot>, ExecError> {
        let mut slots = self.slots();
        if let Some(s) = slots.get(name) {
            if s.dtype != dtype || s.shape != shape {
                return Err(ExecError::Feed {
                    what: "state",
                    name: name.to_string(),
                    why: format!(
                        "is {}{:?} in the store, but a graph reads it as {dtype}{shape:?}",
                        s.dtype, s.shape
                    ),
                });
            }
            return Ok(s.clone());
        }
        let len: usize = shape.iter().product();
        let bytes = len
            .checked_mul(dtype.size_bytes())
            .ok_or_else(|| ExecError::Program(format!("state `{name}`: its size overflows")))?;
        let slot = Arc::new(Slot {
            block: Block::new(bytes)?,
            dtype,
            shape: shape.to_vec(),
            len,
        });
        slots.insert(name.to_string(), slot.clone());
        Ok(slot)
    }

    /// Sets state `name` to `t` (making its slot if needed).
    pub fn set(&self, name: &str, t: &Tensor) -> Result<(), ExecError> {
        let slot = self.bind(name, t.dtype, &t.shape)?;
        if t.data.dtype() != slot.dtype || t.data.len() != slot.len {
            return Err(ExecError::Feed {
                what: "state",
                name: name.to_string(),
                why: "holds data that do not fit its type".into(),
            });
        }
        // SAFETY: no instance bound to the store runs while the caller holds it.
        unsafe { slot.view().write(&t.data) };
        Ok(())
    }

    /// The current value of state `name`.
    pub fn get(&self, name: &str) -> Option<Tensor> {
        let slot = self.slots().get(name)?.clone();
        Some(Tensor {
            dtype: slot.dtype,
            shape: slot.shape.clone(),
            // SAFETY: as in `set`.
            data: unsafe { slot.view().read() },
        })
    }

    /// Copies state `name` into `t` (same type), without allocating.
    pub fn read_into(&self, name: &str, t: &mut Tensor) -> Result<(), ExecError> {
        let misfit = |why: &str| ExecError::Feed {
            what: "state",
            name: name.to_string(),
            why: why.to_string(),
        };
        let slot = self
            .slots()
            .get(name)
            .cloned()
            .ok_or_else(|| misfit("is not in the store"))?;
        if slot.len != t.data.len() || slot.dtype != t.data.dtype() {
            return Err(misfit("does not fit the given tensor"));
        }
        // SAFETY: as in `set`.
        let src = unsafe { slot.view().input() };
        dnnc_tensor::with_same!(t.data.as_slice_mut(), src, SliceMut, Slice, d, s => {
            d.copy_from_slice(s)
        }, else return Err(misfit("does not fit the given tensor")));
        Ok(())
    }

    /// Runs `f` on the elements of `f32` state `name`, in place.
    ///
    /// # Safety
    /// No instance bound to the store may run while `f` does (the caller holds the
    /// store between steps), and `f` must not reach the same state through the store.
    pub unsafe fn with_f32_mut<R>(
        &self,
        name: &str,
        f: impl FnOnce(&mut [f32]) -> R,
    ) -> Result<R, ExecError> {
        let slot = self
            .slots()
            .get(name)
            .cloned()
            .ok_or_else(|| ExecError::Feed {
                what: "state",
                name: name.to_string(),
                why: "is not in the store".into(),
            })?;
        if slot.dtype != DType::F32 {
            return Err(ExecError::Feed {
                what: "state",
                name: name.to_string(),
                why: format!("is {}, not f32", slot.dtype),
            });
        }
        // SAFETY: the block holds `len` f32s, and the caller promises that nothing else
        // touches it while `f` runs.
        let v = std::slice::from_raw_parts_mut(slot.block.ptr() as *mut f32, slot.len);
        Ok(f(v))
    }

    /// The names of the states, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.slots().keys().cloned().collect();
        v.sort();
        v
    }

    /// Every state's current value.
    pub fn snapshot(&self) -> HashMap<String, Tensor> {
        self.names()
            .into_iter()
            .filter_map(|n| self.get(&n).map(|t| (n, t)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_shared_and_typed() {
        let s = Store::new();
        let t = Tensor::f32(vec![2], vec![1.0, 2.0]).unwrap();
        s.set("w", &t).unwrap();
        let a = s.bind("w", DType::F32, &[2]).unwrap();
        let b = s.clone().bind("w", DType::F32, &[2]).unwrap();
        assert_eq!(a.view().ptr, b.view().ptr);
        assert_eq!(s.get("w"), Some(t));
        assert!(s.bind("w", DType::F32, &[3]).is_err());
        let z = s.bind("count", DType::I64, &[]).unwrap();
        assert_eq!(z.len, 1);
        assert_eq!(s.get("count").unwrap().data.to_i64_vec(), vec![0]);
        assert_eq!(s.names(), vec!["count", "w"]);
    }
}
