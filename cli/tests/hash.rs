//! `skiff hash` (unprivileged, no network): the Microsoft RSS verification vectors through
//! the built binary, worker selection by reciprocal_scale, and the argument errors.

use std::process::{Command, Output};

use serde_json::Value;

const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");

use skiff_engine::rx::rps::hash::RSS_VERIFICATION_VECTORS as VECTORS;

fn skiff_hash(args: &[&str]) -> Output {
    Command::new(SKIFF)
        .arg("hash")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {SKIFF} hash {args:?}: {e}"))
}

/// Runs `skiff hash ARGS --json`, asserts success, returns the JSON.
fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = skiff_hash(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "skiff hash {all:?} failed: {}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("skiff hash {all:?}: not JSON ({e}): {stdout}"))
}

fn field(v: &Value, name: &str) -> u64 {
    v[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no numeric {name:?} in {v}"))
}

/// Asserts `skiff hash ARGS` fails with one line on stderr containing every `needle`.
fn fails_with(args: &[&str], needles: &[&str]) {
    let out = skiff_hash(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "skiff hash {args:?} should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line for {args:?}: {stderr}"
    );
    for n in needles {
        assert!(
            stderr.contains(n),
            "skiff hash {args:?}: {n:?} not in {stderr:?}"
        );
    }
}

#[test]
fn microsoft_vectors() {
    for (src, sp, dst, dp, h2, h4) in VECTORS {
        let v = json(&["--src", src, "--dst", dst]);
        assert_eq!(
            field(&v, "hash"),
            u64::from(h2),
            "{src} -> {dst}: addresses only"
        );
        assert_eq!(v["hash_hex"], format!("{h2:#010x}"));
        assert_eq!(field(&v, "worker"), 0, "one worker by default");
        let (sp, dp) = (sp.to_string(), dp.to_string());
        for proto in ["tcp", "udp", "sctp"] {
            let v = json(&[
                "--src", src, "--dst", dst, "--sport", &sp, "--dport", &dp, "--proto", proto,
            ]);
            assert_eq!(
                field(&v, "hash"),
                u64::from(h4),
                "{src}:{sp} -> {dst}:{dp} {proto}"
            );
        }
    }
}

#[test]
fn explicit_ms_key_with_separators_is_the_default() {
    let key = "6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0:d0:ca:2b:cb:ae:7b:30:b4:\
               77:cb:2d:a3:80:30:f2:0c:6a:42:b7:3b:be:ac:01:fa";
    let (src, sp, dst, dp, _, h4) = VECTORS[3];
    let (sp, dp) = (sp.to_string(), dp.to_string());
    let base = ["--src", src, "--dst", dst, "--sport", &sp, "--dport", &dp];
    for k in [key.to_string(), key.replace(':', " "), key.replace(':', "")] {
        let mut args = base.to_vec();
        args.extend(["--key", &k]);
        assert_eq!(field(&json(&args), "hash"), u64::from(h4), "key {k:?}");
    }
}

#[test]
fn workers_by_reciprocal_scale_and_rss_queue() {
    for (src, sp, dst, dp, _, h4) in VECTORS {
        let (sp, dp) = (sp.to_string(), dp.to_string());
        let v = json(&[
            "--src",
            src,
            "--dst",
            dst,
            "--sport",
            &sp,
            "--dport",
            &dp,
            "--workers",
            "4",
            "--queues",
            "6",
        ]);
        let expect_worker = (u64::from(h4) * 4) >> 32;
        assert_eq!(
            field(&v, "worker"),
            expect_worker,
            "{src}: reciprocal_scale(hash, 4)"
        );
        // Default indirection table: 128 entries, entry i -> queue i % 6.
        assert_eq!(
            field(&v, "queue"),
            u64::from((h4 & 127) % 6),
            "{src}: RSS queue"
        );
    }
    // 0x51ccc178 * 4 >> 32 = 1, as in the text output.
    let out = skiff_hash(&[
        "--src",
        "66.9.149.187",
        "--dst",
        "161.142.100.80",
        "--sport",
        "2794",
        "--dport",
        "1766",
        "--workers",
        "4",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hash 0x51ccc178 (1372373368)") && text.contains("worker 1 of 4"),
        "{text}"
    );
}

#[test]
fn symmetric_and_cheap() {
    let (src, sp, dst, dp, ..) = VECTORS[5];
    let (sp, dp) = (sp.to_string(), dp.to_string());
    for kind in ["toeplitz", "cheap"] {
        let fwd = json(&[
            "--src",
            src,
            "--dst",
            dst,
            "--sport",
            &sp,
            "--dport",
            &dp,
            "--hash",
            kind,
            "--symmetric",
        ]);
        let rev = json(&[
            "--src",
            dst,
            "--dst",
            src,
            "--sport",
            &dp,
            "--dport",
            &sp,
            "--hash",
            kind,
            "--symmetric",
        ]);
        assert_eq!(
            field(&fwd, "hash"),
            field(&rev, "hash"),
            "{kind}: both directions"
        );
    }
}

#[test]
fn errors_are_one_clear_line() {
    let v4 = ["--src", "10.0.0.1", "--dst", "10.0.0.2"];
    let cases: [(&[&str], &[&str]); 6] = [
        (&["--sport", "5"], &["--sport and --dport go together"]),
        (&["--dport", "5"], &["--sport and --dport go together"]),
        (&["--key", "6d:5a:56"], &["3 bytes", "40 to 64 bytes"]),
        (&["--key", "6d:5g"], &["not a hex digit"]),
        (&["--workers", "0"], &["--workers"]),
        (
            &["--hash", "cheap", "--key", "00"],
            &["--key applies to --hash toeplitz only"],
        ),
    ];
    for (extra, want) in cases {
        let mut args = v4.to_vec();
        args.extend_from_slice(extra);
        fails_with(&args, want);
    }
    fails_with(
        &["--src", "10.0.0.1", "--dst", "::1"],
        &["different families"],
    );
}
