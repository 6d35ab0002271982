//! Memory planning: where each value of a [`Schedule`] lives.
//!
//! - Inputs, states and constants own their storage for the compiled graph's life.
//! - A state's update is computed in place, into the state's own storage, when the
//!   loop that computes it runs after every other reader of the old value (Adam's
//!   moments and parameters, SGD's parameters); otherwise it is copied at the end.
//! - Every other value gets an offset in one arena. Two values share bytes only if
//!   they are never live at the same step — except that a loop may write its result
//!   over an operand of the same size that dies in that loop (both are read and written
//!   element by element). Offsets are chosen greedily, largest values first.
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
    let mut used_as_update: Vec<usize> = Vec::new();
    for &(port, u) in &s.updates {
        let state = s.states[port].val;
        let d = def[u];
        let in_place = matches!(s.vals[u].role, Role::Temp)
            && d != usize::MAX
            && matches!(s.steps[d], Work::Loop { .. })
            && place[u] == Place::Arena(usize::MAX)
            && !used_as_update.contains(&u)
            && s.outputs.iter().all(|o| o.val != state)
            && last_read[state].is_none_or(|l| l <= d)
            && s.vals[u].len == s.vals[state].len
            && s.vals[u].kind == s.vals[state].kind;
        used_as_update.push(u);
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
            && s.vals[a].kind == s.vals[b].kind
    };

    let mut temps: Vec<usize> = (0..nv)
        .filter(|&v| place[v] == Place::Arena(usize::MAX) && first[v] != usize::MAX)
        .collect();
    let bytes = |v: usize| (s.vals[v].len * s.vals[v].kind.size()).div_ceil(ALIGN) * ALIGN;
    temps.sort_by_key(|&v| (std::cmp::Reverse(bytes(v)), first[v]));
    let mut placed: Vec<(usize, usize)> = Vec::new(); // (value, offset)
    let mut arena_bytes = 0;
    let mut unshared_bytes = 0;
    for v in temps {
        let size = bytes(v);
        unshared_bytes += size;
        let mut live: Vec<(usize, usize, bool)> = placed
            .iter()
            .filter(|&&(p, _)| first[p] <= last[v] && first[v] <= last[p])
            .map(|&(p, off)| (off, bytes(p), reuse_ok(p, v) || reuse_ok(v, p)))
            .collect();
        live.sort_unstable();
        // The lowest offset that overlaps no conflicting value.
        let mut off = 0;
        loop {
            let clash = live.iter().find(|&&(o, sz, share)| {
                let overlaps = off < o + sz && o < off + size;
                overlaps && !(share && o == off && sz == size)
            });
            match clash {
                Some(&(o, sz, _)) => off = o + sz,
                None => break,
            }
        }
        placed.push((v, off));
        place[v] = Place::Arena(off);
        arena_bytes = arena_bytes.max(off + size);
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
