//! Independent, reproducible random streams.
//!
//! Every part of the dataset that may be generated on its own thread gets its own
//! ChaCha8 stream whose key is (seed, purpose, index). A stream's output therefore does
//! not depend on which thread runs it, nor on what other streams did before.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a random stream is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Customers, subscriptions, credit memos and the customers' volume ranking.
    World,
    /// Where the imperfect usage rows go.
    SpecialRows,
    /// The ordinary rows of one usage file.
    UsageFile(u64),
    /// One usage row that another file repeats: (file, row).
    PinnedEvent(u64, u64),
}

/// The random stream `stream` of the dataset generated from `seed`.
pub(crate) fn stream(seed: u64, stream: Stream) -> ChaCha8Rng {
    let (purpose, a, b) = match stream {
        Stream::World => (1u64, 0, 0),
        Stream::SpecialRows => (2, 0, 0),
        Stream::UsageFile(file) => (3, file, 0),
        Stream::PinnedEvent(file, row) => (4, file, row),
    };
    let mut key = [0u8; 32];
    for (chunk, word) in key.chunks_exact_mut(8).zip([seed, purpose, a, b]) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |s| stream(7, s).random::<u64>();
        assert_eq!(draw(Stream::UsageFile(1)), draw(Stream::UsageFile(1)));
        assert_ne!(draw(Stream::UsageFile(1)), draw(Stream::UsageFile(2)));
        assert_ne!(
            draw(Stream::PinnedEvent(1, 0)),
            draw(Stream::PinnedEvent(0, 1))
        );
        assert_ne!(
            stream(7, Stream::World).random::<u64>(),
            stream(8, Stream::World).random::<u64>()
        );
    }
}
