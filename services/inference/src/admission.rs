//! Admission control: how many generations run at once, in what order the rest wait, and when a
//! request is refused outright.
//!
//! - Each user may have `per_user` generations running or waiting; one more is a 429.
//! - The platform runs at most `capacity` generations at once (the fleet's parallel slots); the
//!   rest wait in one FIFO queue of at most `queue` entries, and a waiting caller is told its
//!   position as it changes. A full queue is a 503.
//! - A caller that goes away while waiting leaves the queue; one that goes away while running
//!   frees its slot for the next in line.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many generations of yours are running or waiting")]
    UserLimit,
    #[error("the platform's queue is full")]
    QueueFull,
    #[error("waited too long for a free slot")]
    TimedOut,
}

impl Refused {
    /// A reasonable time for the client to wait before trying again.
    pub fn retry_after(self) -> Duration {
        match self {
            Refused::UserLimit => Duration::from_secs(2),
            Refused::QueueFull | Refused::TimedOut => Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_user: usize,
    pub queue: usize,
    pub wait: Duration,
}

pub struct Admission {
    limits: Limits,
    state: Mutex<State>,
}

struct State {
    capacity: usize,
    running: usize,
    /// Running plus waiting, per user.
    per_user: HashMap<Uuid, usize>,
    queue: VecDeque<Waiter>,
    next_ticket: u64,
}

struct Waiter {
    ticket: u64,
    admit: oneshot::Sender<()>,
    position: watch::Sender<usize>,
}

/// A running generation's slot; dropping it lets the next waiter in.
pub struct Permit {
    admission: Arc<Admission>,
    user: Uuid,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.admission.lock();
        state.forget_user(self.user);
        state.running -= 1;
        state.admit_waiters();
    }
}

impl Admission {
    pub fn new(limits: Limits, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            limits,
            state: Mutex::new(State {
                capacity,
                running: 0,
                per_user: HashMap::new(),
                queue: VecDeque::new(),
                next_ticket: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes how many generations may run at once (nodes joined, left or recovered).
    pub fn set_capacity(&self, capacity: usize) {
        let mut state = self.lock();
        state.capacity = capacity;
        state.admit_waiters();
    }

    /// (running, waiting), for metrics and status pages.
    pub fn load(&self) -> (usize, usize) {
        let state = self.lock();
        (state.running, state.queue.len())
    }

    /// Waits for a slot. `on_position` is called with the caller's 1-based place in the queue
    /// whenever it changes (not at all if a slot is free at once).
    pub async fn acquire(self: &Arc<Self>, user: Uuid, mut on_position: impl FnMut(usize)) -> Result<Permit, Refused> {
        let (ticket, admitted, mut position) = {
            let mut state = self.lock();
            if state.per_user.get(&user).is_some_and(|n| *n >= self.limits.per_user) {
                return Err(Refused::UserLimit);
            }
            let free = state.running < state.capacity && state.queue.is_empty();
            if !free && state.queue.len() >= self.limits.queue {
                return Err(Refused::QueueFull);
            }
            *state.per_user.entry(user).or_insert(0) += 1;
            if free {
                state.running += 1;
                return Ok(Permit { admission: self.clone(), user });
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            let (admit, admitted) = oneshot::channel();
            let (position_tx, position) = watch::channel(state.queue.len() + 1);
            state.queue.push_back(Waiter { ticket, admit, position: position_tx });
            (ticket, admitted, position)
        };
        // From here on, leaving early (the caller dropped this future, or gave up) must undo
        // the reservation: the guard does it.
        let mut guard = Waiting { admission: self, ticket, user, admitted: Some(admitted) };
        on_position(*position.borrow_and_update());
        let deadline = tokio::time::sleep(self.limits.wait);
        tokio::pin!(deadline);
        loop {
            let admitted = guard.admitted.as_mut().expect("present until admitted");
            tokio::select! {
                result = admitted => {
                    guard.admitted = None;
                    // Admitted (or, never in practice, dropped from the queue without a slot):
                    // either way the queue entry is gone and the guard has nothing to undo.
                    std::mem::forget(guard);
                    return match result {
                        Ok(()) => Ok(Permit { admission: self.clone(), user }),
                        Err(_) => {
                            self.lock().forget_user(user);
                            Err(Refused::TimedOut)
                        }
                    };
                }
                changed = position.changed() => {
                    if changed.is_ok() {
                        on_position(*position.borrow_and_update());
                    }
                }
                _ = &mut deadline => return Err(Refused::TimedOut),
            }
        }
    }
}

struct Waiting<'a> {
    admission: &'a Arc<Admission>,
    ticket: u64,
    user: Uuid,
    admitted: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = self.admission.lock();
        state.forget_user(self.user);
        match state.queue.iter().position(|w| w.ticket == self.ticket) {
            Some(i) => {
                state.queue.remove(i);
                state.publish_positions();
            }
            // Admitted between the last poll and the drop: give the slot back.
            None => {
                state.running -= 1;
                state.admit_waiters();
            }
        }
    }
}

impl State {
    fn forget_user(&mut self, user: Uuid) {
        if let Some(n) = self.per_user.get_mut(&user) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(&user);
            }
        }
    }

    fn admit_waiters(&mut self) {
        while self.running < self.capacity {
            let Some(waiter) = self.queue.pop_front() else { break };
            self.running += 1;
            if waiter.admit.send(()).is_err() {
                // Cannot happen (a leaving caller removes its entry before dropping the receiver),
                // but if it did, the slot is not taken.
                self.running -= 1;
            }
        }
        self.publish_positions();
    }

    fn publish_positions(&self) {
        for (i, w) in self.queue.iter().enumerate() {
            w.position.send_if_modified(|p| {
                let changed = *p != i + 1;
                *p = i + 1;
                changed
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_user: usize, queue: usize) -> Limits {
        Limits { per_user, queue, wait: Duration::from_secs(5) }
    }

    #[tokio::test]
    async fn runs_up_to_capacity_then_queues_in_order_then_refuses() {
        let a = Admission::new(limits(10, 1), 1);
        let first = a.acquire(Uuid::now_v7(), |_| {}).await.unwrap();
        let a2 = a.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let queued =
            tokio::spawn(async move { a2.acquire(Uuid::now_v7(), move |p| tx.send(p).unwrap()).await.map(|_| ()) });
        assert_eq!(rx.recv().await, Some(1), "told its place");
        assert_eq!(a.acquire(Uuid::now_v7(), |_| {}).await.err(), Some(Refused::QueueFull));
        assert_eq!(a.load(), (1, 1));
        drop(first);
        queued.await.unwrap().unwrap();
        assert_eq!(a.load(), (0, 0), "the queued permit was dropped at the end of its task");
    }

    #[tokio::test]
    async fn a_user_has_a_cap_of_their_own() {
        let a = Admission::new(limits(1, 10), 5);
        let user = Uuid::now_v7();
        let held = a.acquire(user, |_| {}).await.unwrap();
        assert_eq!(a.acquire(user, |_| {}).await.err(), Some(Refused::UserLimit));
        assert!(a.acquire(Uuid::now_v7(), |_| {}).await.is_ok(), "others are not affected");
        drop(held);
        assert!(a.acquire(user, |_| {}).await.is_ok());
    }

    #[tokio::test]
    async fn a_caller_that_leaves_the_queue_frees_its_place() {
        let a = Admission::new(limits(10, 5), 1);
        let running = a.acquire(Uuid::now_v7(), |_| {}).await.unwrap();
        let a2 = a.clone();
        let leaver = tokio::spawn(async move { a2.acquire(Uuid::now_v7(), |_| {}).await.map(|_| ()) });
        let a3 = a.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let stayer = tokio::spawn(async move {
            let _permit = a3.acquire(Uuid::now_v7(), move |p| tx.send(p).unwrap()).await.unwrap();
        });
        assert_eq!(rx.recv().await, Some(2));
        leaver.abort();
        assert_eq!(rx.recv().await, Some(1), "moved up when the one ahead left");
        drop(running);
        stayer.await.unwrap();
        assert_eq!(a.load(), (0, 0));
    }

    #[tokio::test]
    async fn waiting_too_long_is_refused() {
        let a = Admission::new(Limits { per_user: 10, queue: 5, wait: Duration::from_millis(20) }, 0);
        assert_eq!(a.acquire(Uuid::now_v7(), |_| {}).await.err(), Some(Refused::TimedOut));
        assert_eq!(a.load(), (0, 0));
    }
}
