//! `strata-worker`: trains one run (or one learning-rate range test, or loads one TorchScript
//! module to describe it) for a Strata daemon, then exits. The only Strata program that links
//! libtorch: a crash, an out-of-memory or a GPU's memory stays in its process, with its job.
//!
//! Layout:
//! - [`train`]: training with libtorch — datasets as tensors, models, optimizers, checkpoints,
//!   the loop of one run, the range test. Knows nothing of the daemon: a run reports through a
//!   [`train::run::RunSink`].
//! - [`session`]: the worker's side of the worker protocol (`worker.proto`): it connects, says
//!   hello, receives its job (and the checkpoint it starts from), reports, heartbeats, stops when
//!   asked, and exits at once when its daemon is gone.
//! - [`jobs`]: a job from the daemon turned into the training it asks for, and run to its end.
//!
//! The domain, the spec parser, the store's record encoding, the checkpoint file format and the
//! dataset readers come from `strata-server`'s library, so the two sides read them alike.

pub mod jobs;
pub mod session;
pub mod train;
