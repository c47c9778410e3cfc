//! Bakes libtorch's library folder into every binary's rpath, so `strata-worker` and the test binaries
//! run without LD_LIBRARY_PATH, and links libtorch_cuda even though no symbol of it is used
//! directly: without it the CUDA backend is never registered and a GPU is never seen.
//! torch-sys tells its direct dependents where libtorch is.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TORCH_SYS_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let lib_dir = std::env::var("DEP_TORCH_SYS_LIBTORCH_LIB")
        .ok()
        .or_else(|| {
            std::env::var("LIBTORCH")
                .ok()
                .map(|dir| format!("{dir}/lib"))
        });
    let Some(lib_dir) = lib_dir else { return };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    if PathBuf::from(&lib_dir).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
