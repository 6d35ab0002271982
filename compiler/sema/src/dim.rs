//! Symbolic dimensions: polynomials with integer coefficients over named symbols.
//!
//! A dimension is `784`, `hidden`, `B`, `2 * hidden + 1`, or `size(S)` (the product of
//! the dimensions a pack `..S` stands for). Two dimensions are equal exactly when their
//! normal forms are equal, so `hidden * 2` equals `2 * hidden` but `B` never equals
//! `784`. Division is kept only when exact; otherwise it is reported by the caller.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A symbol a dimension can mention.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Atom {
    /// A hyperparameter or a symbolic dimension, by name.
    Sym(Arc<str>),
    /// The product of the dimensions bound to the pack of this name.
    PackSize(Arc<str>),
    /// A unification variable created when instantiating a signature.
    Var(u32),
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Sym(s) => f.write_str(s),
            Atom::PackSize(s) => write!(f, "size({s})"),
            Atom::Var(v) => write!(f, "?{v}"),
        }
    }
}

/// A product of atoms, sorted; the empty product is the constant term.
type Monomial = Vec<Atom>;

/// A dimension in normal form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Dim {
    terms: BTreeMap<Monomial, i64>,
}

impl Dim {
    pub fn constant(c: i64) -> Dim {
        let mut terms = BTreeMap::new();
        if c != 0 {
            terms.insert(Vec::new(), c);
        }
        Dim { terms }
    }

    pub fn atom(a: Atom) -> Dim {
        let mut terms = BTreeMap::new();
        terms.insert(vec![a], 1);
        Dim { terms }
    }

    pub fn sym(name: &str) -> Dim {
        Dim::atom(Atom::Sym(Arc::from(name)))
    }

    /// The value when the dimension is a known integer.
    pub fn as_const(&self) -> Option<i64> {
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&Vec::new()).copied(),
            _ => None,
        }
    }

    /// The atom when the dimension is exactly one atom with coefficient 1.
    pub fn as_atom(&self) -> Option<&Atom> {
        match self.terms.iter().next() {
            Some((m, 1)) if self.terms.len() == 1 && m.len() == 1 => Some(&m[0]),
            _ => None,
        }
    }

    pub fn atoms(&self) -> impl Iterator<Item = &Atom> {
        self.terms.keys().flatten()
    }

    pub fn checked_add(&self, other: &Dim) -> Option<Dim> {
        let mut terms = self.terms.clone();
        for (m, c) in &other.terms {
            let e = terms.entry(m.clone()).or_insert(0);
            *e = e.checked_add(*c)?;
            if *e == 0 {
                terms.remove(m);
            }
        }
        Some(Dim { terms })
    }

    pub fn checked_neg(&self) -> Option<Dim> {
        let mut terms = BTreeMap::new();
        for (m, c) in &self.terms {
            terms.insert(m.clone(), c.checked_neg()?);
        }
        Some(Dim { terms })
    }

    pub fn checked_sub(&self, other: &Dim) -> Option<Dim> {
        self.checked_add(&other.checked_neg()?)
    }

    pub fn checked_mul(&self, other: &Dim) -> Option<Dim> {
        let mut out = Dim::default();
        for (m1, c1) in &self.terms {
            for (m2, c2) in &other.terms {
                let mut m: Monomial = m1.iter().chain(m2).cloned().collect();
                m.sort();
                let c = c1.checked_mul(*c2)?;
                let term = Dim {
                    terms: BTreeMap::from([(m, c)]),
                };
                out = out.checked_add(&term)?;
            }
        }
        Some(out)
    }

    /// Exact division: every coefficient divisible by a constant divisor, or the
    /// divisor equal to a monomial factor shared by every term.
    pub fn checked_div(&self, other: &Dim) -> Option<Dim> {
        if let Some(d) = other.as_const() {
            if d == 0 || self.terms.values().any(|c| c % d != 0) {
                return None;
            }
            let terms = self.terms.iter().map(|(m, c)| (m.clone(), c / d)).collect();
            return Some(Dim { terms });
        }
        if self == other {
            return Some(Dim::constant(1));
        }
        // Divide by a single monomial with coefficient `k`.
        let (dm, dc) = match other.terms.iter().next() {
            Some((m, c)) if other.terms.len() == 1 => (m, *c),
            _ => return None,
        };
        let mut out = BTreeMap::new();
        for (m, c) in &self.terms {
            if c % dc != 0 {
                return None;
            }
            let mut rest = m.clone();
            for a in dm {
                let i = rest.iter().position(|x| x == a)?;
                rest.remove(i);
            }
            out.insert(rest, c / dc);
        }
        Some(Dim { terms: out })
    }

    /// Replaces atoms by dimensions; atoms `subst` returns `None` for stay as they are.
    pub fn substitute(&self, subst: &mut dyn FnMut(&Atom) -> Option<Dim>) -> Option<Dim> {
        let mut out = Dim::default();
        for (m, c) in &self.terms {
            let mut term = Dim::constant(*c);
            for a in m {
                let d = subst(a).unwrap_or_else(|| Dim::atom(a.clone()));
                term = term.checked_mul(&d)?;
            }
            out = out.checked_add(&term)?;
        }
        Some(out)
    }

    /// If the dimension is `k * v + rest` for a single occurrence of variable `v`
    /// (degree one) and `rest` not mentioning it, returns `(k, rest)`.
    pub fn linear_in(&self, v: &Atom) -> Option<(i64, Dim)> {
        let mut k = None;
        let mut rest = Dim::default();
        for (m, c) in &self.terms {
            let n = m.iter().filter(|a| *a == v).count();
            match n {
                0 => {
                    rest.terms.insert(m.clone(), *c);
                }
                1 if m.len() == 1 && k.is_none() => k = Some(*c),
                _ => return None,
            }
        }
        k.map(|k| (k, rest))
    }
}

impl From<i64> for Dim {
    fn from(c: i64) -> Dim {
        Dim::constant(c)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("0");
        }
        // Constant last reads best: `2*hidden + 1`.
        let mut first = true;
        let mut ordered: Vec<_> = self.terms.iter().filter(|(m, _)| !m.is_empty()).collect();
        ordered.extend(self.terms.iter().filter(|(m, _)| m.is_empty()));
        for (m, c) in ordered {
            let (sign, mag) = if *c < 0 {
                ("-", c.unsigned_abs())
            } else {
                ("+", *c as u64)
            };
            if first {
                if sign == "-" {
                    f.write_str("-")?;
                }
            } else {
                write!(f, " {sign} ")?;
            }
            first = false;
            if m.is_empty() {
                write!(f, "{mag}")?;
                continue;
            }
            if mag != 1 {
                write!(f, "{mag}*")?;
            }
            for (i, a) in m.iter().enumerate() {
                if i > 0 {
                    f.write_str("*")?;
                }
                write!(f, "{a}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms_compare_equal() {
        let h = Dim::sym("hidden");
        let two = Dim::constant(2);
        assert_eq!(h.checked_mul(&two), two.checked_mul(&h));
        let sum = h.checked_add(&h).unwrap();
        assert_eq!(sum, two.checked_mul(&h).unwrap());
        assert_eq!(sum.to_string(), "2*hidden");
        assert_ne!(Dim::sym("B"), Dim::constant(784));
        assert_eq!(h.checked_sub(&h).unwrap().as_const(), Some(0));
    }

    #[test]
    fn division_is_exact_only() {
        let d = Dim::constant(784);
        assert_eq!(
            d.checked_div(&Dim::constant(28)).unwrap().as_const(),
            Some(28)
        );
        assert!(d.checked_div(&Dim::constant(5)).is_none());
        let bh = Dim::sym("B").checked_mul(&Dim::sym("h")).unwrap();
        assert_eq!(bh.checked_div(&Dim::sym("B")).unwrap(), Dim::sym("h"));
        assert!(Dim::sym("h").checked_div(&Dim::sym("B")).is_none());
    }

    #[test]
    fn solves_linear_variables() {
        let v = Atom::Var(0);
        let d = Dim::atom(v.clone())
            .checked_mul(&Dim::constant(2))
            .unwrap()
            .checked_add(&Dim::constant(1))
            .unwrap();
        let (k, rest) = d.linear_in(&v).unwrap();
        assert_eq!((k, rest.as_const()), (2, Some(1)));
        assert_eq!(d.to_string(), "2*?0 + 1");
    }
}
