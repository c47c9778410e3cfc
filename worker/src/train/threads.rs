//! Which threads run libtorch's intra-op parallelism: the worker's training thread only.
//!
//! libtorch's CPU kernels split work over an OpenMP team, one team per thread that starts
//! parallel work, kept for that thread's lifetime. GNU OpenMP then counts every team's threads,
//! and once they outnumber the cores it stops spinning between parallel regions and sleeps
//! instead (its "throttled" spin): a training step of many small kernels then waits on futex
//! wake-ups. Measured here (2 cores, `--threads 2`, an MLP 512×512): the daemon's first run
//! trained at 230 ms an epoch, every later run at 450 ms — slower than one thread (370 ms) —
//! because a dataset load or a validation on another thread had made a second team.
//!
//! A worker trains one job, on one thread, but it has other threads (its async runtime's, which
//! talk to the daemon): those do their tensor work on themselves alone, and only the training
//! thread has a team, of `--threads` threads — by default the cores shared among the daemon's
//! slots, so that every worker's team together fits on the cores.

use std::{
    ffi::{c_int, CStr},
    sync::OnceLock,
};

type SetThreads = unsafe extern "C" fn(c_int);
type SetThreadsLocal = unsafe extern "C" fn(c_int) -> c_int;

/// The per-thread setters of the libraries already loaded, looked up once: libgomp's
/// `omp_set_num_threads` and the C entry point of libtorch's MKL (its header's
/// `mkl_set_num_threads_local` is a macro for `MKL_Set_Num_Threads_Local`; the lower-case symbol
/// is the Fortran one, which takes a pointer). Builds without OpenMP or MKL (macOS, aarch64)
/// have nothing to set.
struct ThreadSetters {
    openmp: Option<SetThreads>,
    mkl: Option<SetThreadsLocal>,
}

fn thread_setters() -> &'static ThreadSetters {
    static SETTERS: OnceLock<ThreadSetters> = OnceLock::new();
    SETTERS.get_or_init(|| ThreadSetters {
        // SAFETY: omp_set_num_threads(int), as libgomp declares it.
        openmp: loaded_symbol(c"omp_set_num_threads")
            .map(|symbol| unsafe { std::mem::transmute::<*mut libc::c_void, SetThreads>(symbol) }),
        // SAFETY: MKL_Set_Num_Threads_Local(int) -> int, as MKL declares it.
        mkl: loaded_symbol(c"MKL_Set_Num_Threads_Local").map(|symbol| unsafe {
            std::mem::transmute::<*mut libc::c_void, SetThreadsLocal>(symbol)
        }),
    })
}

/// A symbol of the libraries already loaded, if one of them has it.
fn loaded_symbol(name: &CStr) -> Option<*mut libc::c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT only looks a name up; a null answer means absent.
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!symbol.is_null()).then_some(symbol)
}

/// Makes this thread's tensor work run on this thread alone: no OpenMP team, no MKL threads.
/// Call it when a thread starts, before it touches a tensor.
pub fn keep_tensor_work_on_this_thread() {
    set_tensor_threads_of_this_thread(1);
}

/// Makes this thread's tensor work use `threads` threads (itself included). Call it when a
/// thread starts, before it touches a tensor; other threads keep their own counts.
pub fn set_tensor_threads_of_this_thread(threads: usize) {
    let threads = c_int::try_from(threads.max(1)).unwrap_or(c_int::MAX);
    // libtorch sets a thread's OpenMP and MKL thread counts from its global setting the first
    // time the thread asks for them; ask first, so that what is set here stays set.
    let _ = tch::get_num_threads();
    let setters = thread_setters();
    if let Some(set) = setters.openmp {
        // SAFETY: sets the calling thread's OpenMP thread count.
        unsafe { set(threads) };
    }
    if let Some(set) = setters.mkl {
        // SAFETY: sets the calling thread's MKL thread count (returns the previous one).
        unsafe { set(threads) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_thread_works_alone_and_others_keep_the_global_count() {
        let global = tch::get_num_threads();
        let kept = std::thread::spawn(|| {
            keep_tensor_work_on_this_thread();
            // Tensor work still runs, on this thread.
            let sum = tch::Tensor::ones([1000, 100], (tch::Kind::Float, tch::Device::Cpu))
                .sum(tch::Kind::Float)
                .double_value(&[]);
            (tch::get_num_threads(), sum)
        })
        .join()
        .unwrap();
        assert_eq!(kept, (1, 100_000.0));
        let set = std::thread::spawn(|| {
            set_tensor_threads_of_this_thread(3);
            tch::get_num_threads()
        })
        .join()
        .unwrap();
        assert_eq!(set, 3);
        let other = std::thread::spawn(tch::get_num_threads).join().unwrap();
        assert_eq!(other, global);
    }
}
