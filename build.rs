//! Records the commit billrun is built from, for `billrun --version`.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        // A source tarball has no git: say so rather than invent a commit.
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=BILLRUN_COMMIT={commit}");
    // A new commit or checkout changes HEAD or the branch it points to.
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-changed=.git/packed-refs");
}
