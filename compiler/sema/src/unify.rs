//! Instantiating a signature at a call: binding the callee's symbolic dimensions and
//! packs by matching argument shapes, then checking every other dimension.
//!
//! Callee-side names (hyperparameters, symbolic dimensions `B`, packs `..S`) are
//! substituted by caller-side dimensions. Bindings hold caller terms only and are
//! never substituted again, so equal names on both sides cannot be confused.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::dim::{Atom, Dim};
use crate::ty::{DimItem, Shape};

#[derive(Default, Debug)]
pub struct Unifier {
    /// Callee names that stand for dimensions, and those that stand for packs.
    vars: HashSet<Arc<str>>,
    pack_vars: HashSet<Arc<str>>,
    pub dims: HashMap<Arc<str>, Dim>,
    pub packs: HashMap<Arc<str>, Vec<DimItem>>,
    /// Which argument (by position) bound each name, for "fixed by this argument" labels.
    pub origin: HashMap<Arc<str>, usize>,
    /// The argument being matched.
    pub current: usize,
}

/// Why two shapes do not match.
#[derive(Debug, Clone, PartialEq)]
pub enum ShapeError {
    Rank {
        expected: String,
        found: usize,
    },
    /// Dimension `index` (from the left of the argument) differs.
    Dim {
        index: usize,
        expected: Dim,
        found: Dim,
    },
    /// The argument's rank is unknown (it has a pack) where a fixed rank is needed.
    UnknownRank,
    /// A pack already bound by an earlier argument stands for other dimensions here.
    Pack {
        name: Arc<str>,
        bound: Shape,
        found: Shape,
    },
}

impl Unifier {
    pub fn new(vars: &[Arc<str>], packs: &[Arc<str>]) -> Unifier {
        Unifier {
            vars: vars.iter().cloned().collect(),
            pack_vars: packs.iter().cloned().collect(),
            ..Unifier::default()
        }
    }

    /// Fixes a callee name to a caller dimension (hyperparameters of an instance).
    pub fn fix(&mut self, name: &Arc<str>, value: Dim) {
        self.vars.insert(name.clone());
        self.dims.insert(name.clone(), value);
    }

    /// Substitutes what is bound; unbound callee names stay.
    pub fn subst_dim(&self, d: &Dim) -> Option<Dim> {
        d.substitute(&mut |a| match a {
            Atom::Sym(n) => self.dims.get(n).cloned(),
            Atom::PackSize(p) => self
                .packs
                .get(p)
                .and_then(|items| Shape(items.clone()).numel()),
            // Quotients are divided by `substitute` once their parts are substituted.
            Atom::Var(_) | Atom::Quot(..) => None,
        })
    }

    fn unbound(&self, d: &Dim) -> Vec<Atom> {
        let mut out: Vec<Atom> = d
            .atoms()
            .filter(|a| match a {
                Atom::Sym(n) => self.vars.contains(n) && !self.dims.contains_key(n),
                Atom::PackSize(p) => self.pack_vars.contains(p) && !self.packs.contains_key(p),
                Atom::Var(_) => false,
                Atom::Quot(n, d) => !self.unbound(n).is_empty() || !self.unbound(d).is_empty(),
            })
            .cloned()
            .collect();
        out.dedup();
        out
    }

    /// Matches one callee dimension against one caller dimension.
    /// `Ok(false)` means "cannot decide yet": retry after other bindings.
    pub fn match_dim(&mut self, callee: &Dim, actual: &Dim) -> Result<bool, Dim> {
        let Some(d) = self.subst_dim(callee) else {
            return Err(callee.clone());
        };
        let unbound = self.unbound(&d);
        match unbound.as_slice() {
            [] => {
                if &d == actual {
                    Ok(true)
                } else {
                    Err(d)
                }
            }
            [Atom::Sym(v)] => {
                let atom = Atom::Sym(v.clone());
                let Some((k, rest)) = d.linear_in(&atom) else {
                    return Ok(false);
                };
                let solved = actual
                    .checked_sub(&rest)
                    .and_then(|x| x.checked_div(&Dim::constant(k)));
                match solved {
                    Some(value) if value.as_const().is_none_or(|c| c >= 0) => {
                        self.origin.insert(v.clone(), self.current);
                        self.dims.insert(v.clone(), value);
                        Ok(true)
                    }
                    _ => Err(d),
                }
            }
            _ => Ok(false),
        }
    }

    /// Matches a callee shape against an argument shape, collecting dimension pairs
    /// that could not be decided yet into `deferred`.
    pub fn match_shape(
        &mut self,
        callee: &Shape,
        actual: &Shape,
        deferred: &mut Vec<(usize, Dim, Dim)>,
    ) -> Result<(), ShapeError> {
        let pack_at = callee.0.iter().position(|d| matches!(d, DimItem::Pack(_)));
        let pairs: Vec<(usize, &DimItem, &DimItem)> = match pack_at {
            None => {
                if actual.has_pack() {
                    return Err(ShapeError::UnknownRank);
                }
                if callee.0.len() != actual.0.len() {
                    return Err(ShapeError::Rank {
                        expected: callee.0.len().to_string(),
                        found: actual.0.len(),
                    });
                }
                callee
                    .0
                    .iter()
                    .zip(&actual.0)
                    .enumerate()
                    .map(|(i, (c, a))| (i, c, a))
                    .collect()
            }
            Some(k) => {
                let prefix = &callee.0[..k];
                let suffix = &callee.0[k + 1..];
                let n = actual.0.len();
                let fixed = prefix.len() + suffix.len();
                let actual_pack = actual.0.iter().position(|d| matches!(d, DimItem::Pack(_)));
                let fits = match actual_pack {
                    None => n >= fixed,
                    Some(j) => j >= prefix.len() && n - 1 - j >= suffix.len(),
                };
                if !fits {
                    return Err(ShapeError::Rank {
                        expected: format!("at least {fixed}"),
                        found: n,
                    });
                }
                let DimItem::Pack(pname) = &callee.0[k] else {
                    unreachable!("pack position");
                };
                let middle: Vec<DimItem> = actual.0[prefix.len()..n - suffix.len()].to_vec();
                match self.packs.get(pname) {
                    Some(bound) if *bound != middle => {
                        return Err(ShapeError::Pack {
                            name: pname.clone(),
                            bound: Shape(bound.clone()),
                            found: Shape(middle),
                        })
                    }
                    Some(_) => {}
                    None => {
                        self.origin.insert(pname.clone(), self.current);
                        self.packs.insert(pname.clone(), middle);
                    }
                }
                let mut pairs = Vec::new();
                for (i, c) in prefix.iter().enumerate() {
                    pairs.push((i, c, &actual.0[i]));
                }
                for (i, c) in suffix.iter().enumerate() {
                    let ai = n - suffix.len() + i;
                    pairs.push((ai, c, &actual.0[ai]));
                }
                pairs
            }
        };
        for (i, c, a) in pairs {
            match (c, a) {
                (DimItem::Dim(c), DimItem::Dim(a)) => match self.match_dim(c, a) {
                    Ok(true) => {}
                    Ok(false) => deferred.push((i, c.clone(), a.clone())),
                    Err(expected) => {
                        return Err(ShapeError::Dim {
                            index: i,
                            expected,
                            found: a.clone(),
                        })
                    }
                },
                _ => return Err(ShapeError::UnknownRank),
            }
        }
        Ok(())
    }

    /// The callee shape in caller terms, if every name in it is bound.
    pub fn subst_shape(&self, s: &Shape) -> Option<Shape> {
        let mut out = Vec::new();
        for item in &s.0 {
            match item {
                DimItem::Dim(d) => {
                    let d = self.subst_dim(d)?;
                    if !self.unbound(&d).is_empty() {
                        return None;
                    }
                    out.push(DimItem::Dim(d));
                }
                DimItem::Pack(p) if self.pack_vars.contains(p) => {
                    out.extend(self.packs.get(p)?.iter().cloned());
                }
                DimItem::Pack(p) => out.push(DimItem::Pack(p.clone())),
            }
        }
        Some(Shape(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(dims: &[&str]) -> Shape {
        Shape(
            dims.iter()
                .map(|d| match d.strip_prefix("..") {
                    Some(p) => DimItem::Pack(Arc::from(p)),
                    None => match d.parse::<i64>() {
                        Ok(c) => DimItem::Dim(Dim::constant(c)),
                        Err(_) => DimItem::Dim(Dim::sym(d)),
                    },
                })
                .collect(),
        )
    }

    #[test]
    fn binds_dims_and_packs() {
        let mut u = Unifier::new(&[Arc::from("N")], &[Arc::from("S")]);
        let mut deferred = Vec::new();
        u.match_shape(
            &shape(&["..S", "N"]),
            &shape(&["B", "8", "24"]),
            &mut deferred,
        )
        .unwrap();
        assert!(deferred.is_empty());
        assert_eq!(
            u.subst_shape(&shape(&["..S", "N"])).unwrap(),
            shape(&["B", "8", "24"])
        );
        assert_eq!(u.subst_shape(&shape(&["..S"])).unwrap(), shape(&["B", "8"]));
    }

    #[test]
    fn reports_mismatched_dims() {
        let mut u = Unifier::new(&[Arc::from("B")], &[]);
        u.fix(&Arc::from("inp"), Dim::constant(784));
        let mut deferred = Vec::new();
        let err = u
            .match_shape(&shape(&["B", "inp"]), &shape(&["B", "100"]), &mut deferred)
            .unwrap_err();
        assert_eq!(
            err,
            ShapeError::Dim {
                index: 1,
                expected: Dim::constant(784),
                found: Dim::constant(100)
            }
        );
    }

    #[test]
    fn solves_linear_dims() {
        let mut u = Unifier::new(&[Arc::from("n")], &[]);
        let two_n = Dim::sym("n").checked_mul(&Dim::constant(2)).unwrap();
        assert_eq!(u.match_dim(&two_n, &Dim::constant(10)), Ok(true));
        assert_eq!(u.dims[&Arc::from("n")], Dim::constant(5));
        assert!(u.match_dim(&two_n, &Dim::constant(7)).is_err() || u.dims.len() == 1);
    }
}
