// Link settings for the flowlab binaries, from the libtorch folder torch-sys reports
// (DEP_TCH_LIBTORCH_LIB):
// - an rpath to it, so `flowlab` runs without the user setting LD_LIBRARY_PATH;
// - libtorch_cuda kept as a dependency when the libtorch has one: nothing references its symbols
//   directly, so `--as-needed` would drop it and CUDA would silently be unavailable.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
}
