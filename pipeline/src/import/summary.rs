//! What a sweep tells people: counts and the text of the import summary.

use std::fmt::Write as _;

use super::{FileStatus, ImportSummary};

impl ImportSummary {
    /// Files that failed as a whole.
    pub fn failed_files(&self) -> usize {
        self.files
            .iter()
            .filter(|f| f.status == FileStatus::Failed)
            .count()
    }

    /// The summary as plain text, for the terminal and for mail.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let count = |s: FileStatus| self.files.iter().filter(|f| f.status == s).count();
        let _ = writeln!(
            out,
            "import of {} into {}: {} files loaded, {} already loaded, {} failed",
            self.inbox,
            self.dataset,
            count(FileStatus::Loaded),
            count(FileStatus::AlreadyLoaded),
            count(FileStatus::Failed)
        );
        for (table, (loaded, rejected)) in &self.rows_by_table {
            let _ = writeln!(out, "  {table}: {loaded} rows loaded, {rejected} rejected");
        }
        for f in self.files.iter().filter(|f| f.status == FileStatus::Failed) {
            let _ = writeln!(
                out,
                "  failed: {}: {}",
                f.file,
                f.reason.as_deref().unwrap_or_default()
            );
        }
        if !self.top_reject_reasons.is_empty() {
            let reasons: Vec<String> = self
                .top_reject_reasons
                .iter()
                .map(|(r, n)| format!("{r} ({n})"))
                .collect();
            let _ = writeln!(
                out,
                "  most frequent reject reasons: {}",
                reasons.join(", ")
            );
        }
        out
    }
}
