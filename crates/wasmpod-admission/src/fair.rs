//! Fairness across tenants: deficit round robin by memory units.
//!
//! Tenants with something queued take turns. A tenant's turn starts by adding one quantum of units
//! to its credit (its *deficit*); while its head request weighs no more than that credit, the head
//! is the *selected* request: it starts as soon as it fits the pod, its weight is taken from the
//! credit, and the turn goes on with the next head. When the credit no longer covers the head,
//! the turn ends and the tenant goes to the back of the round, keeping its credit. A tenant that
//! leaves the round (nothing queued, or at its own in-flight cap) loses its credit.
//!
//! Over any stretch in which two tenants stay in the round, the units they start differ by less
//! than one quantum plus two of their largest requests, whatever their request sizes or arrival
//! rates (the deficit round robin bound): fair by memory, not by request count. Within a tenant,
//! requests start in arrival order.
//!
//! **No starvation.** While the selected request does not fit the pod's free capacity (or a gate
//! is closed), nothing else starts, exactly as the single FIFO behaved before tenants existed. A
//! large request therefore waits for at most `ceil(weight / quantum)` rounds of credit and then for
//! capacity, never behind an endless stream of small ones. The price is head-of-line blocking by
//! the selected request, which is what guarantees its start.

use std::collections::VecDeque;

use crate::tenant::{TenantId, Tenants};

/// The round: the tenants with something queued that may start (their head fits their own cap),
/// the first one being the one whose turn it is.
#[derive(Debug)]
pub(crate) struct Round {
    ring: VecDeque<TenantId>,
    /// The front tenant's turn has begun: its credit covers its head, which is the selected request.
    in_turn: bool,
    quantum: u64,
}

impl Round {
    pub(crate) fn new(quantum: u64) -> Round {
        Round { ring: VecDeque::new(), in_turn: false, quantum: quantum.max(1) }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    pub(crate) fn tenants(&self) -> impl Iterator<Item = TenantId> + '_ {
        self.ring.iter().copied()
    }

    /// The tenant whose head is selected, if a turn is under way.
    pub(crate) fn current(&self) -> Option<TenantId> {
        if self.in_turn {
            self.ring.front().copied()
        } else {
            None
        }
    }

    /// A tenant joins the round at the back (it had nothing that could start).
    pub(crate) fn join(&mut self, tenant: TenantId) {
        debug_assert!(!self.ring.contains(&tenant));
        self.ring.push_back(tenant);
    }

    /// A tenant leaves the round (nothing queued, or at its cap); the caller zeroes its credit.
    pub(crate) fn leave(&mut self, tenant: TenantId) {
        if self.ring.front() == Some(&tenant) {
            self.ring.pop_front();
            self.in_turn = false;
        } else if let Some(index) = self.ring.iter().position(|&t| t == tenant) {
            self.ring.remove(index);
        }
    }

    /// After `tenant`'s head changed or was charged: its turn ends if its credit no longer covers
    /// its new head.
    pub(crate) fn review<W>(&mut self, tenant: TenantId, tenants: &Tenants<W>) {
        if self.current() != Some(tenant) {
            return;
        }
        let t = tenants.get(tenant);
        if t.queue.front().is_some_and(|head| t.deficit < head.units) {
            self.end_turn();
        }
    }

    fn end_turn(&mut self) {
        self.ring.rotate_left(1);
        self.in_turn = false;
    }

    /// The tenant whose head is to start next: the current turn's, or the next tenant in the round
    /// whose credit, topped up by a quantum per turn, covers its head.
    ///
    /// When a whole round passes without selecting anyone, the rounds that would follow before
    /// some tenant's credit covers its head are added in one step, so the cost does not depend on
    /// how small the quantum is against the requests.
    pub(crate) fn select<W>(&mut self, tenants: &mut Tenants<W>) -> Option<TenantId> {
        let mut passed = 0;
        loop {
            let tenant = *self.ring.front()?;
            if self.in_turn {
                return Some(tenant);
            }
            let t = tenants.get_mut(tenant);
            let head = t.queue.front().map_or(0, |w| w.units);
            t.deficit = t.deficit.saturating_add(self.quantum);
            if t.deficit >= head {
                self.in_turn = true;
                return Some(tenant);
            }
            self.end_turn();
            passed += 1;
            if passed == self.ring.len() {
                self.skip_empty_rounds(tenants);
                passed = 0;
            }
        }
    }

    /// Adds at once the credit of the rounds in which no tenant's credit would cover its head.
    fn skip_empty_rounds<W>(&mut self, tenants: &mut Tenants<W>) {
        let quantum = self.quantum;
        let rounds_needed = |tenant: TenantId, tenants: &Tenants<W>| {
            let t = tenants.get(tenant);
            let head = t.queue.front().map_or(0, |w| w.units);
            head.saturating_sub(t.deficit).div_ceil(quantum)
        };
        let Some(fewest) = self.ring.iter().map(|&t| rounds_needed(t, tenants)).min() else {
            return;
        };
        let credit = fewest.saturating_sub(1).saturating_mul(quantum);
        if credit == 0 {
            return;
        }
        for &tenant in &self.ring {
            let t = tenants.get_mut(tenant);
            t.deficit = t.deficit.saturating_add(credit);
        }
    }
}
