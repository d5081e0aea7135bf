//! Ids numbered densely in the order they were first added: the index behind
//! [`super::placement::SegmentLookup`].

use crate::error::{PipelineError, Result};

/// Ids numbered densely in the order they were first added, each with a value, found by
/// their text. The table holds 4-byte numbers, the ids sit in one buffer, and each
/// entry keeps where its id is beside its value, so that 100 000 customers take a few MB
/// instead of an allocation each and a lookup touches few cache lines: with a
/// `HashMap<String, _>` the profile of a 100M-event scan spent a fifth of its time in
/// `memcmp` on keys scattered over the heap.
#[derive(Debug)]
pub(super) struct IdIndex<T> {
    table: hashbrown::HashTable<u32>,
    text: String,
    entries: Vec<IdEntry<T>>,
}

#[derive(Debug)]
struct IdEntry<T> {
    /// The id is `text[start..end]`.
    start: u32,
    end: u32,
    value: T,
}

impl<T> Default for IdIndex<T> {
    fn default() -> Self {
        Self {
            table: hashbrown::HashTable::new(),
            text: String::new(),
            entries: Vec::new(),
        }
    }
}

impl<T> IdIndex<T> {
    fn hash(id: &str) -> u64 {
        twox_hash::XxHash3_64::oneshot(id.as_bytes())
    }

    fn id_in<'a>(text: &'a str, entry: &IdEntry<T>) -> &'a str {
        &text[entry.start as usize..entry.end as usize]
    }

    /// The number of `id` and its value, if it was added.
    pub(super) fn get(&self, id: &str) -> Option<(u32, &T)> {
        let number = *self.table.find(Self::hash(id), |&n| {
            Self::id_in(&self.text, &self.entries[n as usize]) == id
        })?;
        Some((number, &self.entries[number as usize].value))
    }

    /// The value of the id numbered `number`.
    pub(super) fn value_mut(&mut self, number: u32) -> &mut T {
        &mut self.entries[number as usize].value
    }

    /// The number of `id`, added with `value()` if new.
    ///
    /// # Errors
    /// More than 4 GiB of ids, or 2^32 of them.
    pub(super) fn intern(&mut self, id: &str, value: impl FnOnce() -> T) -> Result<u32> {
        if let Some((number, _)) = self.get(id) {
            return Ok(number);
        }
        let too_many = |_| PipelineError::Internal("more than 4 GiB of ids in master data".into());
        let Self {
            table,
            text,
            entries,
        } = self;
        let number = u32::try_from(entries.len()).map_err(too_many)?;
        let start = u32::try_from(text.len()).map_err(too_many)?;
        text.push_str(id);
        let end = u32::try_from(text.len()).map_err(too_many)?;
        entries.push(IdEntry {
            start,
            end,
            value: value(),
        });
        table.insert_unique(Self::hash(id), number, |&n| {
            Self::hash(Self::id_in(text, &entries[n as usize]))
        });
        Ok(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_numbered_in_the_order_first_added_and_found_by_their_whole_text() {
        let mut index = IdIndex::default();
        let numbers: Vec<u32> = ["C1", "C10", "C1", "", "C100", "C10"]
            .into_iter()
            .map(|id| index.intern(id, || id.len()).unwrap())
            .collect();
        assert_eq!(numbers, [0, 1, 0, 2, 3, 1]);
        assert_eq!(index.get("C100"), Some((3, &4)));
        assert_eq!(index.get(""), Some((2, &0)));
        // Prefixes and extensions of known ids are other ids.
        assert_eq!(index.get("C"), None);
        assert_eq!(index.get("C1000"), None);
        // Enough ids for the table to grow several times.
        let many: Vec<String> = (0..10_000).map(|i| format!("CUST-{i:05}")).collect();
        for id in &many {
            index.intern(id, || 10).unwrap();
        }
        assert!(
            many.iter()
                .enumerate()
                .all(|(i, id)| index.get(id) == Some((i as u32 + 4, &10)))
        );
        // A value stays with its id.
        *index.value_mut(1) = 7;
        assert_eq!(index.get("C10"), Some((1, &7)));
    }
}
