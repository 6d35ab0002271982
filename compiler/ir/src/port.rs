//! The ports the compiler adds to a graph, apart from the names the program gives
//! (batch fields, metrics): the loss and learning-rate outputs of a training step,
//! and the learning-rate scale and random key it reads. (Step counters are states:
//! each optimizer keeps its own.)
//!
//! Ports are typed: a stage names `Port::RngKey`, never the string. The inputs a host
//! feeds are named with a `#`, which no `.dnn` identifier has, so a batch field called
//! `rng_key` cannot collide with the random key.

use std::fmt;

/// A port of a lowered graph the compiler defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Port {
    /// Output: the scalar `f32` loss.
    Loss,
    /// Output of a training step: the learning rate it used.
    LearningRate,
    /// Input of a training step with `reduce_on_plateau`: the `f32` factor on the
    /// learning rate that the host keeps.
    LrScale,
    /// Input: the `i64` key of the step's random draws (dropout, `normal`, ...).
    RngKey,
    /// Input of the update half of a data-parallel step: the scalar `f32` loss of
    /// the whole batch, averaged over the processes (its updates are kept only when
    /// it is finite).
    GlobalLoss,
}

impl Port {
    pub const ALL: [Port; 5] = [
        Port::Loss,
        Port::LearningRate,
        Port::LrScale,
        Port::RngKey,
        Port::GlobalLoss,
    ];

    /// The port's name in the graph.
    pub const fn name(self) -> &'static str {
        match self {
            Port::Loss => "loss",
            Port::LearningRate => "lr",
            Port::LrScale => "#lr_scale",
            Port::RngKey => "#rng_key",
            Port::GlobalLoss => "#loss",
        }
    }

    /// The port named `name`, if it is one.
    pub fn of(name: &str) -> Option<Port> {
        Port::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether the host feeds this port (rather than reading it).
    pub const fn is_input(self) -> bool {
        matches!(self, Port::LrScale | Port::RngKey | Port::GlobalLoss)
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_inputs_cannot_be_identifiers() {
        for p in Port::ALL {
            assert_eq!(Port::of(p.name()), Some(p));
            assert_eq!(p.is_input(), p.name().starts_with('#'));
        }
        assert_eq!(Port::of("rng_key"), None);
    }
}
