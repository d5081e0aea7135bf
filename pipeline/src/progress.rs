//! Progress on long work, drawn on stderr only when a person is watching.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Hands out progress bars; all hidden when progress is off (tests, CI, pipes).
#[derive(Debug, Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Progress drawn on stderr (indicatif hides it by itself when stderr is not a terminal).
    pub fn stderr() -> Self {
        Self {
            multi: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// No progress at all.
    pub fn hidden() -> Self {
        Self { multi: None }
    }

    /// A bar counting bytes.
    pub fn bytes(&self, message: &str, total: u64) -> ProgressBar {
        self.bar(
            message,
            total,
            "{msg:>22} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
    }

    /// A bar counting rows or items.
    pub fn items(&self, message: &str, total: u64) -> ProgressBar {
        self.bar(
            message,
            total,
            "{msg:>22} [{bar:30}] {human_pos}/{human_len} ({per_sec}, {eta})",
        )
    }

    /// A spinner for work of unknown length.
    pub fn spinner(&self, message: &str) -> ProgressBar {
        let Some(multi) = &self.multi else {
            return ProgressBar::hidden();
        };
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }

    fn bar(&self, message: &str, total: u64, template: &str) -> ProgressBar {
        let Some(multi) = &self.multi else {
            return ProgressBar::hidden();
        };
        let bar = multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(message.to_string());
        bar
    }
}
