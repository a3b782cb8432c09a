//! Where the workspace is and where the binaries under test were built.

use std::path::{Path, PathBuf};

/// The workspace root (the directory holding the root `Cargo.toml`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}

/// The directory holding debug binaries: `$CARGO_TARGET_DIR/debug` when that
/// variable is set, else `target/debug` under the workspace root.
pub fn debug_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            // Cargo resolves a relative target dir against where it was run;
            // the scripts run it from the workspace root.
            let dir = if dir.is_absolute() {
                dir
            } else {
                root().join(dir)
            };
            dir.join("debug")
        }
        None => root().join("target").join("debug"),
    }
}

/// The proxy binary, `switchboard`.
pub fn proxy_binary() -> PathBuf {
    existing(debug_dir().join("switchboard"))
}

/// An example binary of the sdk crate, e.g. `testhub` or `chat`.
pub fn example_binary(name: &str) -> PathBuf {
    existing(debug_dir().join("examples").join(name))
}

fn existing(path: PathBuf) -> PathBuf {
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh, which builds the proxy and the sdk examples before it runs the tests",
        path.display()
    );
    path
}
