//! The corpus of bad inputs (`tests/bad-inputs/`), as data: each case is the small base
//! dataset `_base/` with the files of its `files/` laid over it (and the paths of its
//! `remove` taken away), billed for October 2026, and its `expect.json` says, worked
//! out by hand, what billrun answers: the exit status, lines of stderr, every reject
//! (file, row, column, code, reason), the usage accounting, the unrated codes and the
//! invoice totals. No case may make billrun panic.
//!
//! The base bills C1 for 5 API calls at 1.00 and one seat at 10.00, with 10 % tax:
//! 16.50 USD.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::common::{billrun_run, copy_dir, repo, rows};

fn corpus() -> std::path::PathBuf {
    repo("tests/bad-inputs")
}

/// The case's dataset, in `into`.
fn dataset_of(case: &Path, expect: &Value, into: &Path) {
    copy_dir(&corpus().join("_base"), into);
    for removed in expect["remove"].as_array().into_iter().flatten() {
        std::fs::remove_dir_all(into.join(removed.as_str().unwrap())).unwrap();
    }
    if case.join("files").is_dir() {
        copy_dir(&case.join("files"), into);
    }
}

fn check_case(case: &Path) -> Result<(), String> {
    let expect: Value =
        serde_json::from_slice(&std::fs::read(case.join("expect.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("out"));
    dataset_of(case, &expect, &data);
    let output = billrun_run(&data, &out, "2026-10");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let mut problems = Vec::new();
    if stderr.contains("panicked") {
        problems.push(format!("panicked: {stderr}"));
    }
    let exit = expect["exit"].as_i64().unwrap();
    if output.status.code() != Some(exit as i32) {
        problems.push(format!(
            "exit {:?}, expected {exit}; stderr: {stderr}",
            output.status.code()
        ));
    }
    for line in expect["stderr"].as_array().into_iter().flatten() {
        let line = line.as_str().unwrap();
        if !stderr.contains(line) {
            problems.push(format!("stderr lacks `{line}`; it is: {stderr}"));
        }
    }
    if exit != 0 {
        if out.exists() {
            problems.push("a failed run wrote its outputs".into());
        }
        return if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        };
    }
    let rejects = rows(
        &out,
        "SELECT source_file, CAST(row_number AS VARCHAR) AS row_no, \"column\", code, reason FROM rejects ORDER BY source_file, row_number",
    );
    let expected_rejects: Vec<Vec<String>> = expect["rejects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    if rejects != expected_rejects {
        problems.push(format!(
            "rejects {rejects:?}, expected {expected_rejects:?}"
        ));
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    if let Some(usage) = expect["usage"].as_object() {
        for (key, value) in usage {
            if manifest["usage"][key] != *value {
                problems.push(format!(
                    "usage.{key} {}, expected {value}",
                    manifest["usage"][key]
                ));
            }
        }
    }
    let unrated: BTreeMap<String, String> = rows(
        &out,
        "SELECT code, CAST(count(*) AS VARCHAR) FROM unrated GROUP BY code",
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect();
    let expected_unrated: BTreeMap<String, String> = expect["unrated"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    if unrated != expected_unrated {
        problems.push(format!(
            "unrated {unrated:?}, expected {expected_unrated:?}"
        ));
    }
    if let Some(reason) = expect["unrated_reason"].as_str() {
        let reasons = rows(&out, "SELECT DISTINCT reason FROM unrated");
        if reasons != [[reason.to_string()]] {
            problems.push(format!("unrated reasons {reasons:?}, expected `{reason}`"));
        }
    }
    let totals: BTreeMap<String, String> = rows(
        &out,
        "SELECT customer_id, CAST(total AS VARCHAR) FROM invoices",
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect();
    let expected_totals: BTreeMap<String, String> = expect["invoice_totals"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    if totals != expected_totals {
        problems.push(format!(
            "invoice totals {totals:?}, expected {expected_totals:?}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn every_bad_input_of_the_corpus_gets_its_expected_answer() {
    let mut cases: Vec<_> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expect.json").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 11, "the corpus lost cases: {cases:?}");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            check_case(case)
                .err()
                .map(|e| format!("{}:\n{e}", case.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
