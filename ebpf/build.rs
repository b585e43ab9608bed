//! Builds `skiff.bpf.c` into a BPF object with clang and leaves it in `OUT_DIR` for
//! `include_bytes!`. Without clang (or without libbpf's headers) the build stops with a
//! message that says what to install, instead of an obscure compiler error.

use std::{env, path::PathBuf, process::Command};

const SOURCE: &str = "skiff.bpf.c";
const INSTALL_HINT: &str = "install them with `sudo apt-get install clang libbpf-dev` \
     (or run `deploy/setup.sh`), or point SKIFF_CLANG at a clang binary";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=SKIFF_CLANG");

    let clang = env::var("SKIFF_CLANG").unwrap_or_else(|_| "clang".to_owned());
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out.join("skiff.bpf.o");

    if Command::new(&clang).arg("--version").output().is_err() {
        fail(&format!(
            "`{clang}` was not found; skiff's XDP program is built with clang: {INSTALL_HINT}"
        ));
    }
    let helpers = [
        "/usr/include/bpf/bpf_helpers.h",
        "/usr/local/include/bpf/bpf_helpers.h",
    ];
    if !helpers.iter().any(|p| PathBuf::from(p).exists()) {
        fail(&format!(
            "<bpf/bpf_helpers.h> (libbpf's headers) was not found: {INSTALL_HINT}"
        ));
    }

    // Debian puts asm/ under the multiarch directory, which clang -target bpf does not search.
    let multiarch = Command::new("gcc")
        .arg("-dumpmachine")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| {
            format!(
                "{}-linux-gnu",
                env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default()
            )
        });

    let status = Command::new(&clang)
        .args([
            "-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-c", SOURCE, "-o",
        ])
        .arg(&object)
        .arg(format!("-I/usr/include/{multiarch}"))
        .status()
        .unwrap_or_else(|e| fail(&format!("running `{clang}` failed: {e}")));
    if !status.success() {
        fail(&format!(
            "`{clang}` could not compile {SOURCE} (see the errors above)"
        ));
    }
}

fn fail(message: &str) -> ! {
    println!("cargo:warning=skiff-ebpf: {message}");
    eprintln!("error: skiff-ebpf: {message}");
    std::process::exit(1);
}
