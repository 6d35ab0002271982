//! Memory planning: where each value of a [`Schedule`] lives.
//!
//! - Inputs, states and constants own their storage for the compiled graph's life.
//! - A state's update is computed in place, into the state's own storage, when the
//!   loop that computes it runs after every other reader of the old value (Adam's
//!   moments and parameters, SGD's parameters); otherwise it is copied at the end.
//! - Every other value gets an offset in one arena. Two values share bytes only if
//!   they are never live at the same step — except that a loop may write its result
//!   over an operand of the same size that dies in that loop (both are read and written
//!   element by element). Offsets are chosen greedily, largest values first; graphs
//!   of more than [`PACK_LIMIT`] temporaries use a linear scan with a best-fit free
//!   list instead (O(n log n)).
//!
//! After the first run nothing is allocated: the arena and the ports are fixed blocks.

pub(crate) use dnnc_exec::program::Place;

use crate::schedule::{Role, Schedule, Work};

pub(crate) struct Plan {
    pub place: Vec<Place>,
    pub arena_bytes: usize,
    /// Bytes all temporaries would take without sharing.
    pub unshared_bytes: usize,
}

const ALIGN: usize = 64;

/// Plans `s`'s storage, appending the end-of-step copies of updates not done in place.
pub(crate) fn plan(s: &mut Schedule) -> Plan {
    let nv = s.vals.len();
    let mut place: Vec<Place> = s
        .vals
        .iter()
        .map(|v| match v.role {
            Role::Temp => Place::Arena(usize::MAX),
            _ => Place::Own,
        })
        .collect();

    // In-place updates.
    let mut def = vec![usize::MAX; nv];
    let mut last_read = vec![None::<usize>; nv];
    for (i, w) in s.steps.iter().enumerate() {
        for o in w.writes() {
            def[o] = i;
        }
        for r in w.reads() {
            last_read[r] = Some(i);
        }
    }
    let mut copies = Vec::new();
    let mut used_as_update = vec![false; nv];
    for &(port, u) in &s.updates {
        let state = s.states[port].val;
        let d = def[u];
        let in_place = matches!(s.vals[u].role, Role::Temp)
            && d != usize::MAX
            && matches!(s.steps[d], Work::Loop { .. })
            && place[u] == Place::Arena(usize::MAX)
            && !used_as_update[u]
            && s.outputs.iter().all(|o| o.val != state)
            && last_read[state].is_none_or(|l| l <= d)
            && s.vals[u].len == s.vals[state].len
            && s.vals[u].dtype == s.vals[state].dtype;
        used_as_update[u] = true;
        if in_place {
            place[u] = Place::Alias(state);
        } else {
            copies.push(Work::Copy { src: u, dst: state });
        }
    }
    s.steps.extend(copies);

    // Live ranges of the arena's values (inclusive step indices).
    let end = s.steps.len();
    let mut first = vec![usize::MAX; nv];
    let mut last = vec![0usize; nv];
    for (i, w) in s.steps.iter().enumerate() {
        for o in w.writes() {
            first[o] = first[o].min(i);
            last[o] = last[o].max(i);
        }
        for r in w.reads() {
            first[r] = first[r].min(i);
            last[r] = last[r].max(i);
        }
    }
    for o in &s.outputs {
        last[o.val] = end;
    }
    // The values a loop may overwrite: same-size operands it reads element by element.
    let reuse_ok = |a: usize, b: usize| -> bool {
        // `b` is written by the loop at `first[b]`, where `a` dies.
        let d = first[b];
        last[a] == d
            && matches!(&s.steps[d], Work::Loop { leaves, out, stores, .. }
                if (*out == b || stores.contains(&b)) && leaves.contains(&a))
            && s.vals[a].len == s.vals[b].len
            && s.vals[a].dtype == s.vals[b].dtype
    };

    let bytes = |v: usize| (s.vals[v].len * s.vals[v].dtype.size_bytes()).div_ceil(ALIGN) * ALIGN;
    let temps: Vec<usize> = (0..nv)
        .filter(|&v| place[v] == Place::Arena(usize::MAX) && first[v] != usize::MAX)
        .collect();
    let unshared_bytes = temps.iter().map(|&v| bytes(v)).sum();
    let lives = Lives {
        first: &first,
        last: &last,
        bytes: &bytes,
        reuse_ok: &reuse_ok,
    };
    let (offsets, arena_bytes) = if temps.len() <= PACK_LIMIT {
        pack_by_size(&lives, temps)
    } else {
        scan(&lives, temps, end)
    };
    for (v, off) in offsets {
        place[v] = Place::Arena(off);
    }
    // Values nothing reads or writes (none in practice) still get a place.
    for p in place.iter_mut() {
        if *p == Place::Arena(usize::MAX) {
            *p = Place::Arena(0);
        }
    }
    Plan {
        place,
        arena_bytes,
        unshared_bytes,
    }
}

/// Up to this many temporaries the arena is packed largest first
/// ([`pack_by_size`], tighter, quadratic in the worst case); larger graphs (thousands
/// of layers) use the O(n log n) [`scan`].
const PACK_LIMIT: usize = 2048;

/// What placement knows of the temporaries: live ranges, sizes and which pairs may
/// share bytes.
struct Lives<'a> {
    first: &'a [usize],
    last: &'a [usize],
    bytes: &'a dyn Fn(usize) -> usize,
    /// Whether a loop writing the second value may overwrite the first, which dies in
    /// it.
    reuse_ok: &'a dyn Fn(usize, usize) -> bool,
}

/// Largest first, each at the lowest offset where it overlaps no value live at the
/// same time (except an operand its loop may overwrite). Returns the offsets and the
/// arena's size.
fn pack_by_size(l: &Lives<'_>, mut temps: Vec<usize>) -> (Vec<(usize, usize)>, usize) {
    temps.sort_by_key(|&v| (std::cmp::Reverse((l.bytes)(v)), l.first[v]));
    let mut placed: Vec<(usize, usize)> = Vec::new(); // (value, offset)
    let mut arena_bytes = 0;
    for v in temps {
        let size = (l.bytes)(v);
        let mut live: Vec<(usize, usize, bool)> = placed
            .iter()
            .filter(|&&(p, _)| l.first[p] <= l.last[v] && l.first[v] <= l.last[p])
            .map(|&(p, off)| {
                let share = (l.reuse_ok)(p, v) || (l.reuse_ok)(v, p);
                (off, (l.bytes)(p), share)
            })
            .collect();
        live.sort_unstable();
        // The lowest offset that overlaps no conflicting value: one sweep in offset
        // order moves past each clash; a value skipped because it could share the
        // offset is looked at again once the offset has moved.
        let mut off = 0;
        loop {
            let start = off;
            for &(o, sz, share) in &live {
                if o >= off + size {
                    break;
                }
                let overlaps = off < o + sz;
                if overlaps && !(share && o == off && sz == size) {
                    off = o + sz;
                }
            }
            if off == start {
                break;
            }
        }
        placed.push((v, off));
        arena_bytes = arena_bytes.max(off + size);
    }
    (placed, arena_bytes)
}

/// A linear scan over the steps with a best-fit free list: each value takes the
/// smallest free block that holds it when it is first written and gives it back after
/// its last use; a loop's result takes over the block of a same-size operand that dies
/// in it. O(n log n) in the number of values. Returns the offsets and the arena's size.
fn scan(l: &Lives<'_>, temps: Vec<usize>, end: usize) -> (Vec<(usize, usize)>, usize) {
    let mut born: Vec<Vec<usize>> = vec![Vec::new(); end + 1];
    let mut dies: Vec<Vec<usize>> = vec![Vec::new(); end + 1];
    let mut offset: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    for &v in &temps {
        born[l.first[v]].push(v);
        dies[l.last[v]].push(v);
    }
    let mut free = FreeList::default();
    // A block handed from a dying operand to a loop's result is not freed with it.
    let mut handed_over: std::collections::HashSet<usize> = std::collections::HashSet::new();
    for i in 0..=end {
        for &v in &born[i] {
            let donor = dies[i].iter().copied().find(|&a| {
                a != v && !handed_over.contains(&a) && offset.contains_key(&a) && (l.reuse_ok)(a, v)
            });
            let off = match donor {
                Some(a) => {
                    handed_over.insert(a);
                    offset[&a]
                }
                None => free.take((l.bytes)(v)),
            };
            offset.insert(v, off);
        }
        for &v in &dies[i] {
            if !handed_over.contains(&v) {
                free.give_back(offset[&v], (l.bytes)(v));
            }
        }
    }
    let mut placed: Vec<(usize, usize)> = offset.into_iter().collect();
    placed.sort_unstable();
    (placed, free.high_water)
}

/// Free blocks of the arena, by offset and by size, and how high the arena has grown.
#[derive(Default)]
struct FreeList {
    by_offset: std::collections::BTreeMap<usize, usize>,
    by_size: std::collections::BTreeSet<(usize, usize)>,
    top: usize,
    high_water: usize,
}

impl FreeList {
    /// The offset of a block of `size` bytes: the smallest free block that holds it
    /// (its rest stays free), a free block at the top grown, or new space at the top.
    fn take(&mut self, size: usize) -> usize {
        if size == 0 {
            return 0;
        }
        if let Some(&(len, off)) = self.by_size.range((size, 0)..).next() {
            self.remove(off, len);
            if len > size {
                self.insert(off + size, len - size);
            }
            return off;
        }
        let off = match self.by_offset.iter().next_back() {
            Some((&off, &len)) if off + len == self.top => {
                self.remove(off, len);
                off
            }
            _ => self.top,
        };
        self.top = off + size;
        self.high_water = self.high_water.max(self.top);
        off
    }

    /// Frees `size` bytes at `off`, merged with free neighbours; space at the top is
    /// given back to the top.
    fn give_back(&mut self, mut off: usize, mut size: usize) {
        if size == 0 {
            return;
        }
        if let Some((&prev, &len)) = self.by_offset.range(..off).next_back() {
            if prev + len == off {
                self.remove(prev, len);
                off = prev;
                size += len;
            }
        }
        if let Some(&len) = self.by_offset.get(&(off + size)) {
            self.remove(off + size, len);
            size += len;
        }
        if off + size == self.top {
            self.top = off;
        } else {
            self.insert(off, size);
        }
    }

    fn insert(&mut self, off: usize, size: usize) {
        self.by_offset.insert(off, size);
        self.by_size.insert((size, off));
    }

    fn remove(&mut self, off: usize, size: usize) {
        self.by_offset.remove(&off);
        self.by_size.remove(&(size, off));
    }
}
