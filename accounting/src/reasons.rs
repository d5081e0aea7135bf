//! The sentences of `rejects.reason` that more than one rule writes, written once.
//!
//! Their text is part of what a billing team reads (and what tests outside the project
//! match), so each is built here and nowhere else.

use std::fmt::Display;

/// A key seen before: `` `customer_id` `C1` appears more than once; the first row is kept``.
pub fn appears_more_than_once(key_column: &str, key: &str) -> String {
    format!("`{key_column}` `{key}` appears more than once; the first row is kept")
}

/// A reference to a row of another table that does not exist:
/// `` product `P9` is not in products``.
pub fn not_in(what: &str, id: &str, table: &str) -> String {
    format!("{what} `{id}` is not in {table}")
}

/// [`not_in`], for a table whose own rejects may explain why the row is missing.
pub fn not_in_or_rejected(what: &str, id: &str, table: &str) -> String {
    format!("{what} `{id}` is not in {table} (or was rejected)")
}

/// Money finer than its currency's minor unit, which billrun would otherwise have to
/// round, silently changing what the customer is owed.
pub fn more_decimals_than(column: &str, amount: impl Display, currency: &str) -> String {
    format!("`{column}` {amount} has more decimals than {currency} allows")
}
