//! Work spread over every core whose output keeps its input's order.

use rayon::prelude::*;

use crate::error::Result;

/// `map`s `items` a chunk of `chunk` at a time, `chunks_at_once` chunks in parallel, and
/// hands each chunk's output to `emit` in item order: the output of one pass over the
/// items, on every core, with at most `chunks_at_once` outputs held beside what `emit`
/// keeps. Gathering everything before emitting held a million customers' invoices (or
/// journal entries) twice. The first error in item order is the one returned.
pub(crate) fn map_chunks_in_order<T: Sync, R: Send>(
    items: &[T],
    chunk: usize,
    chunks_at_once: usize,
    map: impl Fn(&[T]) -> Result<R> + Sync,
    mut emit: impl FnMut(R) -> Result<()>,
) -> Result<()> {
    for window in items.chunks(chunk * chunks_at_once) {
        let outputs: Vec<Result<R>> = window.par_chunks(chunk).map(&map).collect();
        for output in outputs {
            emit(output?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AccountingError;

    #[test]
    fn outputs_arrive_in_item_order_across_windows() {
        let items: Vec<u32> = (0..1000).collect();
        let mut seen = Vec::new();
        map_chunks_in_order(
            &items,
            7,
            3,
            |chunk| Ok(chunk.iter().map(|i| i * 2).collect::<Vec<_>>()),
            |doubled| {
                seen.extend(doubled);
                Ok(())
            },
        )
        .expect("no error");
        assert_eq!(seen, (0..1000).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn the_first_error_in_item_order_is_returned() {
        let items: Vec<u32> = (0..100).collect();
        let mut emitted = 0;
        let result = map_chunks_in_order(
            &items,
            4,
            8,
            |chunk| match chunk.iter().find(|&&i| i == 37 || i == 90) {
                Some(i) => Err(AccountingError::Internal(format!("item {i}"))),
                None => Ok(chunk.len()),
            },
            |n| {
                emitted += n;
                Ok(())
            },
        );
        assert_eq!(
            result.expect_err("an error").to_string(),
            "internal error (a bug in billrun, please report it): item 37"
        );
        // The chunks before the failing one were emitted, none after it.
        assert_eq!(emitted, 36);
    }
}
