//! Symbolic dimensions: polynomials with integer coefficients over named symbols.
//!
//! A dimension is `784`, `hidden`, `B`, `2 * hidden + 1`, or `size(S)` (the product of
//! the dimensions a pack `..S` stands for). Two dimensions are equal exactly when their
//! normal forms are equal, so `hidden * 2` equals `2 * hidden` but `B` never equals
//! `784`. Division is kept only when exact; otherwise it is reported by the caller —
//! except in a parameter's shape, where `inp / groups` of two hyperparameters stays a
//! quotient atom, checked when the layer is instantiated with numbers.

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
    /// `n / d` that is not known to be exact until hyperparameters are numbers (only
    /// in parameter shapes); [`Dim::substitute`] divides once it can.
    Quot(Box<Dim>, Box<Dim>),
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Sym(s) => f.write_str(s),
            Atom::PackSize(s) => write!(f, "size({s})"),
            Atom::Var(v) => write!(f, "?{v}"),
            Atom::Quot(n, d) => {
                let wrap = |x: &Dim| {
                    if x.terms.len() > 1 || x.terms.keys().any(|m| m.len() > 1) {
                        format!("({x})")
                    } else {
                        x.to_string()
                    }
                };
                write!(f, "{} / {}", wrap(n), wrap(d))
            }
        }
    }
}

/// A product of atoms, sorted; the empty product is the constant term.
type Monomial = Vec<Atom>;

/// A dimension in normal form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
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
                let term = match cancel_quotient(&m) {
                    Some((n, rest)) => n.checked_mul(&Dim {
                        terms: BTreeMap::from([(rest, c)]),
                    })?,
                    None => Dim {
                        terms: BTreeMap::from([(m, c)]),
                    },
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

    /// `self / other`: the exact quotient, or, when either side is symbolic and the
    /// division cannot be decided, the quotient atom. `None` when the division is
    /// known to be inexact (or by zero).
    pub fn quotient(&self, other: &Dim) -> Option<Dim> {
        if let Some(q) = self.checked_div(other) {
            return Some(q);
        }
        if other.as_const() == Some(0) || (self.as_const().is_some() && other.as_const().is_some())
        {
            return None;
        }
        Some(Dim::atom(Atom::Quot(
            Box::new(self.clone()),
            Box::new(other.clone()),
        )))
    }

    /// Replaces atoms by dimensions; atoms `subst` returns `None` for stay as they are.
    /// The parts of a quotient are substituted and then divided: `None` when that
    /// division turns out inexact.
    pub fn substitute(&self, subst: &mut dyn FnMut(&Atom) -> Option<Dim>) -> Option<Dim> {
        let mut out = Dim::default();
        for (m, c) in &self.terms {
            let mut term = Dim::constant(*c);
            for a in m {
                let d = match (subst(a), a) {
                    (Some(d), _) => d,
                    (None, Atom::Quot(n, d)) => {
                        n.substitute(subst)?.quotient(&d.substitute(subst)?)?
                    }
                    (None, a) => Dim::atom(a.clone()),
                };
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

/// A monomial holding a quotient `n / d` together with all of `d` (a single product of
/// atoms): `(n, the other atoms)`, since `d * (n / d) = n` once the quotient is exact.
fn cancel_quotient(m: &Monomial) -> Option<(Dim, Monomial)> {
    for (i, a) in m.iter().enumerate() {
        let Atom::Quot(n, d) = a else { continue };
        let (dm, 1) = d.terms.iter().next().map(|(k, v)| (k, *v))? else {
            continue;
        };
        if d.terms.len() != 1 || dm.is_empty() {
            continue;
        }
        let mut rest: Monomial = m.clone();
        rest.remove(i);
        let mut ok = true;
        for x in dm {
            match rest.iter().position(|y| y == x) {
                Some(j) => {
                    rest.remove(j);
                }
                None => ok = false,
            }
        }
        if ok {
            return Some(((**n).clone(), rest));
        }
    }
    None
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

    #[test]
    fn quotients_wait_for_numbers() {
        let (inp, g) = (Dim::sym("inp"), Dim::sym("groups"));
        let q = inp.quotient(&g).unwrap();
        assert_eq!(q.to_string(), "inp / groups");
        assert!(Dim::constant(7).quotient(&Dim::constant(2)).is_none());
        assert!(inp.quotient(&Dim::constant(0)).is_none());
        let with = |i: i64, gv: i64| {
            q.substitute(&mut |a| match a {
                Atom::Sym(n) if &**n == "inp" => Some(Dim::constant(i)),
                Atom::Sym(n) if &**n == "groups" => Some(Dim::constant(gv)),
                _ => None,
            })
        };
        assert_eq!(with(8, 2).and_then(|d| d.as_const()), Some(4));
        assert!(with(3, 2).is_none());
        // `groups * (out / groups)` is `out`.
        let out = Dim::sym("out");
        assert_eq!(g.checked_mul(&out.quotient(&g).unwrap()).unwrap(), out);
        assert_eq!(
            Dim::constant(2)
                .checked_mul(&g)
                .unwrap()
                .checked_mul(&out.quotient(&g).unwrap())
                .unwrap(),
            Dim::constant(2).checked_mul(&out).unwrap()
        );
    }
}
