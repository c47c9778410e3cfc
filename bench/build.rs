//! Bakes libtorch's library folder into the binary's rpath (as the server's build script does), so
//! the hand-written tch loop runs without LD_LIBRARY_PATH. torch-sys tells its direct dependents
//! where libtorch is.

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
    if let Some(lib_dir) = lib_dir {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
}
