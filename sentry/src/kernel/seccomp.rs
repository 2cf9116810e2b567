//! The OCI spec's seccomp profile, enforced by the sentry on the
//! application's system calls (as gVisor does: the host filter is the
//! platform's, the container's filter is emulated). Docker's and podman's
//! default profiles arrive here as the engine resolved them into
//! config.json: a default action and rules of syscall names, an action and
//! argument conditions.
//!
//! Rule semantics follow runc's libseccomp use: the first matching rule
//! decides; a rule's conditions must all hold, except that several
//! conditions on one argument make one rule each (any of them may hold).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// What happens to a filtered call.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum SeccompAction {
    Allow,
    /// Fail with this errno.
    Errno(i32),
    /// SIGSYS to the calling thread's process (the thread-only kill of
    /// SCMP_ACT_KILL ends the process too when it is the only thread).
    Kill,
    /// SIGSYS delivered as a signal the process may handle.
    Trap,
    /// Allowed, and logged.
    Log,
}

/// Comparison of one argument, as libseccomp's SCMP_CMP_*.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ArgOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// (arg & value) == value_two
    MaskedEq,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ArgCond {
    pub index: usize,
    pub value: u64,
    pub value_two: u64,
    pub op: ArgOp,
}

impl ArgCond {
    fn holds(&self, args: &[u64; 6]) -> bool {
        let Some(&a) = args.get(self.index) else {
            return false;
        };
        match self.op {
            ArgOp::Eq => a == self.value,
            ArgOp::Ne => a != self.value,
            ArgOp::Lt => a < self.value,
            ArgOp::Le => a <= self.value,
            ArgOp::Gt => a > self.value,
            ArgOp::Ge => a >= self.value,
            ArgOp::MaskedEq => a & self.value == self.value_two,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeccompRule {
    pub action: SeccompAction,
    pub conds: Vec<ArgCond>,
}

/// A whole profile, keyed by x86_64 syscall number.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeccompProfile {
    pub default: Option<SeccompAction>,
    pub rules: HashMap<u64, Vec<SeccompRule>>,
}

impl SeccompProfile {
    /// Adds a rule for `nr`, splitting conditions as runc does.
    pub fn add(&mut self, nr: u64, action: SeccompAction, conds: Vec<ArgCond>) {
        let mut seen = [0usize; 6];
        for c in &conds {
            if let Some(n) = seen.get_mut(c.index) {
                *n += 1;
            }
        }
        let rules = self.rules.entry(nr).or_default();
        if seen.iter().any(|&n| n > 1) {
            for c in conds {
                rules.push(SeccompRule {
                    action,
                    conds: vec![c],
                });
            }
        } else {
            rules.push(SeccompRule { action, conds });
        }
    }

    /// The action for one call.
    pub fn decide(&self, nr: u64, args: &[u64; 6]) -> SeccompAction {
        if let Some(rules) = self.rules.get(&nr) {
            for r in rules {
                if r.conds.iter().all(|c| c.holds(args)) {
                    return r.action;
                }
            }
        }
        self.default.unwrap_or(SeccompAction::Allow)
    }
}

static PROFILE: OnceLock<SeccompProfile> = OnceLock::new();

/// Installs the sandbox's profile (once, at boot).
pub fn install(profile: SeccompProfile) {
    let _ = PROFILE.set(profile);
}

/// The action for a call; Allow when the spec has no profile.
pub fn check(nr: u64, args: &[u64; 6]) -> SeccompAction {
    match PROFILE.get() {
        Some(p) => p.decide(nr, args),
        None => SeccompAction::Allow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_default_and_split_conditions() {
        let mut p = SeccompProfile {
            default: Some(SeccompAction::Errno(1)),
            ..Default::default()
        };
        p.add(0, SeccompAction::Allow, vec![]);
        // personality(0) or personality(8): two conditions on arg 0.
        p.add(
            135,
            SeccompAction::Allow,
            vec![
                ArgCond {
                    index: 0,
                    value: 0,
                    value_two: 0,
                    op: ArgOp::Eq,
                },
                ArgCond {
                    index: 0,
                    value: 8,
                    value_two: 0,
                    op: ArgOp::Eq,
                },
            ],
        );
        // clone without namespace flags.
        p.add(
            56,
            SeccompAction::Allow,
            vec![ArgCond {
                index: 0,
                value: 0x7E02_0000,
                value_two: 0,
                op: ArgOp::MaskedEq,
            }],
        );
        let a = |x: u64| [x, 0, 0, 0, 0, 0];
        assert_eq!(p.decide(0, &a(0)), SeccompAction::Allow);
        assert_eq!(p.decide(135, &a(8)), SeccompAction::Allow);
        assert_eq!(p.decide(135, &a(0)), SeccompAction::Allow);
        assert_eq!(p.decide(135, &a(3)), SeccompAction::Errno(1));
        assert_eq!(p.decide(56, &a(0x11)), SeccompAction::Allow);
        assert_eq!(p.decide(56, &a(0x1000_0000)), SeccompAction::Errno(1));
        assert_eq!(p.decide(999, &a(0)), SeccompAction::Errno(1));
    }
}
