//! The FIFO queue of runs waiting for a training slot, and the slots.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::{
    domain::RunId,
    error::{Result, StrataError},
};

pub(super) struct Queue {
    /// Queued runs in FIFO order (the slots' semaphore is FIFO too); for queue positions.
    waiting: Mutex<Waiting>,
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    /// Runs that may wait at once (`--max-queued-runs`): each holds its prepared spec and a
    /// task, and shutdown records each.
    max_waiting: usize,
}

#[derive(Default)]
struct Waiting {
    runs: VecDeque<RunId>,
    /// Places promised to runs being stored, not yet pushed.
    reserved: usize,
}

impl Queue {
    /// `max_concurrent` 0: the daemon trains nothing itself (its runs wait for remote workers).
    pub fn new(max_concurrent: usize, max_waiting: usize) -> Self {
        Queue {
            waiting: Mutex::new(Waiting::default()),
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            max_waiting: max_waiting.max(1),
        }
    }

    /// Promises `n` places in the queue, or says it is full (a run and its twin are queued
    /// together or not at all). Each [`Queue::push`] takes one; [`Queue::unreserve`] gives back
    /// what a failed start will not push.
    pub fn reserve(&self, n: usize) -> Result<()> {
        let mut waiting = self.waiting();
        let taken = waiting.runs.len() + waiting.reserved;
        if taken + n > self.max_waiting {
            return Err(StrataError::AtLimit(format!(
                "{taken} run(s) are queued, as many as stratad takes (--max-queued-runs {}); wait for some to start, cancel some, or raise the limit",
                self.max_waiting
            )));
        }
        waiting.reserved += n;
        Ok(())
    }

    pub fn unreserve(&self, n: usize) {
        let mut waiting = self.waiting();
        waiting.reserved = waiting.reserved.saturating_sub(n);
    }

    /// Runs that train at the same time.
    pub fn slots(&self) -> usize {
        self.max_concurrent
    }

    /// Runs holding a slot now, and runs waiting for one: what a client placing work over
    /// several daemons compares.
    pub fn load(&self) -> (usize, usize) {
        let running = self
            .max_concurrent
            .saturating_sub(self.slots.available_permits());
        (running, self.waiting().runs.len())
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a run at the back of the queue, in a place reserved for it.
    pub fn push(&self, id: RunId) {
        let mut waiting = self.waiting();
        waiting.reserved = waiting.reserved.saturating_sub(1);
        waiting.runs.push_back(id);
    }

    /// Runs `with` on the runs waiting now, while none can leave the queue (shutdown stops them
    /// all before any takes a slot).
    pub fn while_held<T>(&self, with: impl FnOnce(&VecDeque<RunId>) -> T) -> T {
        with(&self.waiting().runs)
    }

    /// 1-based place of a queued run, 0 if it is not waiting.
    pub fn position(&self, id: RunId) -> u32 {
        self.waiting()
            .runs
            .iter()
            .position(|w| *w == id)
            .map_or(0, |i| i as u32 + 1)
    }

    /// Waits for a slot for work that is not a run (a range test): behind the runs already
    /// waiting (the semaphore is FIFO), without a queue position. `None` once the slots are gone.
    pub async fn take_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().acquire_owned().await.ok()
    }

    /// Takes `id` out of the queue (a remote worker took it).
    pub fn leave(&self, id: RunId) {
        self.waiting().runs.retain(|w| *w != id);
    }

    /// Waits for a slot for `id`, or until `stop` is notified (then `None`). Either way the run
    /// leaves the queue. The slot is held until the permit is dropped.
    pub async fn wait_for_slot(&self, id: RunId, stop: &Notify) -> Option<OwnedSemaphorePermit> {
        let permit = tokio::select! {
            permit = self.slots.clone().acquire_owned() => permit.ok(),
            _ = stop.notified() => None,
        };
        self.waiting().runs.retain(|w| *w != id);
        permit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_wait_in_order_for_the_slots() {
        let queue = Queue::new(1, 100);
        queue.reserve(3).unwrap();
        let (a, b, c) = (RunId(1), RunId(2), RunId(3));
        for id in [a, b, c] {
            queue.push(id);
        }
        assert_eq!(
            [a, b, c].map(|id| queue.position(id)),
            [1, 2, 3],
            "FIFO positions"
        );
        let never = Notify::new();
        assert_eq!(queue.load(), (0, 3), "none running, three queued");
        let first = queue.wait_for_slot(a, &never).await.expect("a free slot");
        assert_eq!([b, c].map(|id| queue.position(id)), [1, 2]);
        assert_eq!(queue.load(), (1, 2), "a runs, b and c wait");
        // The only slot is taken: b waits until it is freed.
        let waiting = queue.wait_for_slot(b, &never);
        tokio::pin!(waiting);
        assert!(
            futures_poll_once(waiting.as_mut()).await.is_none(),
            "no slot while a holds it"
        );
        drop(first);
        assert!(waiting.await.is_some());
        assert_eq!(queue.position(b), 0);
        // A stop while waiting: no slot, and the run leaves the queue.
        queue.reserve(1).unwrap();
        queue.push(RunId(9));
        let _second = queue.wait_for_slot(RunId(9), &never).await;
        let stop = Notify::new();
        stop.notify_one();
        assert!(queue.wait_for_slot(c, &stop).await.is_none());
        assert_eq!(queue.position(c), 0);
        assert_eq!(queue.slots(), 1);
        assert_eq!(Queue::new(0, 1).slots(), 0, "no slot: remote workers only");
    }

    #[test]
    fn a_full_queue_refuses_more_and_a_reservation_given_back_frees_its_place() {
        let queue = Queue::new(1, 3);
        queue.reserve(2).unwrap();
        queue.push(RunId(1));
        let err = queue.reserve(2).unwrap_err();
        assert!(err.to_string().contains("--max-queued-runs 3"), "{err}");
        queue.reserve(1).unwrap();
        assert!(queue.reserve(1).is_err());
        queue.unreserve(1);
        queue.reserve(1).unwrap();
    }

    /// Polls a future once: `Some` if it is ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(fut: F) -> Option<F::Output> {
        let mut fut = fut;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
                std::task::Poll::Ready(value) => Some(value),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
