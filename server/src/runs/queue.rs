//! The FIFO queue of runs waiting for a training slot, and the slots.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::domain::RunId;

pub(super) struct Queue {
    /// Queued runs in FIFO order (the slots' semaphore is FIFO too); for queue positions.
    waiting: Mutex<VecDeque<RunId>>,
    slots: Arc<Semaphore>,
    max_concurrent: usize,
}

impl Queue {
    pub fn new(max_concurrent: usize) -> Self {
        let max_concurrent = max_concurrent.max(1);
        Queue {
            waiting: Mutex::new(VecDeque::new()),
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
        }
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
        (running, self.waiting().len())
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, VecDeque<RunId>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a run at the back of the queue.
    pub fn push(&self, id: RunId) {
        self.waiting().push_back(id);
    }

    /// 1-based place of a queued run, 0 if it is not waiting.
    pub fn position(&self, id: RunId) -> u32 {
        self.waiting()
            .iter()
            .position(|w| *w == id)
            .map_or(0, |i| i as u32 + 1)
    }

    /// Waits for a slot for work that is not a run (a range test): behind the runs already
    /// waiting (the semaphore is FIFO), without a queue position. `None` once the slots are gone.
    pub async fn take_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().acquire_owned().await.ok()
    }

    /// Waits for a slot for `id`, or until `stop` is notified (then `None`). Either way the run
    /// leaves the queue. The slot is held until the permit is dropped.
    pub async fn wait_for_slot(&self, id: RunId, stop: &Notify) -> Option<OwnedSemaphorePermit> {
        let permit = tokio::select! {
            permit = self.slots.clone().acquire_owned() => permit.ok(),
            _ = stop.notified() => None,
        };
        self.waiting().retain(|w| *w != id);
        permit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_wait_in_order_for_the_slots() {
        let queue = Queue::new(1);
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
        let _second = queue.wait_for_slot(RunId(9), &never).await;
        let stop = Notify::new();
        stop.notify_one();
        assert!(queue.wait_for_slot(c, &stop).await.is_none());
        assert_eq!(queue.position(c), 0);
        assert_eq!(queue.slots(), 1);
        assert_eq!(Queue::new(0).slots(), 1, "at least one slot");
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
