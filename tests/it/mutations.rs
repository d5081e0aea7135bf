//! Random mutations of the bundled sample's files: no input makes billrun panic or fail
//! inside itself. Each case mutates one file of a copy of `data-samples/sample/input`
//! in one way (a cell replaced by a hostile value, a line dropped, doubled or cut short,
//! a field removed, a byte changed, the file truncated, the header dropped), bills
//! October 2026 and asserts the run either succeeds (bad rows are rejects, and the run's
//! own check that every usage row is accounted for holds) or fails as bad input (exit 65)
//! with a reason on stderr. Never exit 70 (a fault of billrun) and never a panic (101).
//! The cases are seeded: a failure names the seed, case and mutation to replay it.

use std::path::{Path, PathBuf};

use crate::common::{billrun_run, copy_dir, repo};

/// A small deterministic generator (SplitMix64): the cases must replay exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Values that have broken parsers and arithmetic elsewhere.
const HOSTILE: &[&str] = &[
    "",
    "-1",
    "0",
    "-0",
    "1e400",
    "NaN",
    "inf",
    "99999999999999999999",
    "9223372036854775808",
    "0.000000000000000000000001",
    "1,5",
    " 12 ",
    "2026-13-45",
    "2026-02-30",
    "2026-10-05T25:00:00Z",
    "0000-01-01",
    "9999-12-31T23:59:59Z",
    "\u{0}",
    "ü€😀",
    "\"",
    "\"unterminated",
    "a;b;c",
    "=1+1",
    "USD ",
    "usd",
    "XXX",
];

fn csv_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(csv_files(&path));
        } else if path.extension().is_some_and(|e| e == "csv") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Mutates `text` in one random way; returns the new text and what was done.
fn mutate(text: &str, rng: &mut Rng) -> (String, String) {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.len() < 2 {
        return (String::new(), "emptied the file".into());
    }
    let data_line = 1 + rng.below(lines.len() - 1);
    match rng.below(8) {
        0 | 1 => {
            let mut cells: Vec<String> = lines[data_line].split(',').map(str::to_string).collect();
            let at = rng.below(cells.len());
            let value = HOSTILE[rng.below(HOSTILE.len())];
            let what = format!("line {data_line} cell {at} := {value:?}");
            cells[at] = value.to_string();
            lines[data_line] = cells.join(",");
            (lines.join("\n") + "\n", what)
        }
        2 => {
            lines.remove(data_line);
            (lines.join("\n") + "\n", format!("dropped line {data_line}"))
        }
        3 => {
            let line = lines[data_line].clone();
            lines.insert(data_line, line);
            (lines.join("\n") + "\n", format!("doubled line {data_line}"))
        }
        4 => {
            let mut cells: Vec<&str> = lines[data_line].split(',').collect();
            let at = rng.below(cells.len());
            cells.remove(at);
            lines[data_line] = cells.join(",");
            (
                lines.join("\n") + "\n",
                format!("line {data_line} lost field {at}"),
            )
        }
        5 => {
            let mut bytes = text.as_bytes().to_vec();
            let at = rng.below(bytes.len());
            let byte = (rng.next() & 0xff) as u8;
            bytes[at] = byte;
            (
                String::from_utf8_lossy(&bytes).into_owned(),
                format!("byte {at} := {byte:#04x}"),
            )
        }
        6 => {
            let at = rng.below(text.len());
            let cut = (0..=at)
                .rev()
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(0);
            (text[..cut].to_string(), format!("truncated at byte {cut}"))
        }
        _ => {
            lines.remove(0);
            (lines.join("\n") + "\n", "dropped the header".into())
        }
    }
}

#[test]
fn random_mutations_never_panic_and_fail_only_as_bad_input() {
    const SEED: u64 = 20_261_203;
    const CASES: usize = 120;
    let sample = repo("data-samples/sample/input");
    let files = csv_files(&sample);
    let mut rng = Rng(SEED);
    let mut failures = Vec::new();
    let (mut succeeded, mut refused) = (0, 0);
    for case in 0..CASES {
        let dir = tempfile::tempdir().unwrap();
        let (data, out) = (dir.path().join("data"), dir.path().join("out"));
        copy_dir(&sample, &data);
        let file = &files[rng.below(files.len())];
        let relative = file.strip_prefix(&sample).unwrap();
        let (text, what) = mutate(&std::fs::read_to_string(file).unwrap(), &mut rng);
        std::fs::write(data.join(relative), text).unwrap();
        let output = billrun_run(&data, &out, "2026-10");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let describe = || format!("seed {SEED} case {case}: {}: {what}", relative.display());
        match output.status.code() {
            Some(0) if !stderr.contains("panicked") => succeeded += 1,
            Some(65) if stderr.contains("billrun: error: ") && !stderr.contains("panicked") => {
                refused += 1;
            }
            code => failures.push(format!("{}: exit {code:?}: {stderr}", describe())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{CASES} mutations: {succeeded} billed, {refused} refused as bad input");
    // The mutations must exercise both answers, or they test too little.
    assert!(
        succeeded > 10 && refused > 3,
        "{succeeded} succeeded, {refused} refused"
    );
}
