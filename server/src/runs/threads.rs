//! The training threads: one long-lived OS thread per training slot, on which every run trains.
//!
//! Why not tokio's blocking pool: libtorch's intra-op parallelism (OpenMP) gives every thread that
//! starts parallel work a team of worker threads of its own, kept for the thread's lifetime, and
//! once the teams together outnumber the cores every parallel region gets slow (see
//! `train::threads`). On the blocking pool each run landed on whichever pool thread was free, so
//! a daemon's teams multiplied. Here a slot's runs (and range tests) always train on the slot's
//! one thread and its one team; every other thread keeps its tensor work to itself.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{mpsc, Arc, Mutex},
};

use tokio::sync::oneshot;

use crate::error::{Result, StrataError};

type Job = Box<dyn FnOnce() + Send>;

pub(super) struct TrainingThreads {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl TrainingThreads {
    /// Starts `count` threads (at least one), each running libtorch's kernels on
    /// `tensor_threads` threads. They end when this is dropped.
    pub fn start(count: usize, tensor_threads: usize) -> Self {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..count.max(1) {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("strata-train-{index}"))
                .spawn(move || {
                    crate::train::threads::set_tensor_threads_of_this_thread(tensor_threads);
                    loop {
                        // The lock is held while waiting, so one idle thread waits for the next
                        // job and the others wait for the lock: either way each job runs once.
                        let job = receiver.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => break,
                        }
                    }
                });
            if let Err(err) = spawned {
                // Fewer threads than slots: runs still train, some wait for a thread.
                tracing::error!(error = %err, "could not start a training thread");
            }
        }
        TrainingThreads {
            jobs: Mutex::new(sender),
        }
    }

    /// Runs `work` on a training thread and waits for it. The caller holds a training slot, and
    /// there are as many threads as slots, so `work` starts at once.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            // A panic is reported as the run's failure; the thread lives on for the next run.
            let _ = done.send(catch_unwind(AssertUnwindSafe(work)));
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| StrataError::Internal("the training threads are gone".into()))?;
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => Err(StrataError::Internal(format!(
                "training panicked: {}",
                panic_message(panic.as_ref())
            ))),
            Err(_) => Err(StrataError::Internal(
                "a training thread ended without an answer".into(),
            )),
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_same_few_threads_and_survives_a_panic() {
        let threads = TrainingThreads::start(2, 1);
        let mut names = std::collections::BTreeSet::new();
        for _ in 0..6 {
            let name = threads
                .run(|| std::thread::current().name().unwrap_or("").to_string())
                .await
                .unwrap();
            names.insert(name);
        }
        assert!(
            names.iter().all(|n| n.starts_with("strata-train-")),
            "{names:?}"
        );
        assert!(names.len() <= 2, "{names:?}");
        let err = threads.run(|| panic!("boom")).await.unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
        assert_eq!(threads.run(|| 7).await.unwrap(), 7);
    }
}
