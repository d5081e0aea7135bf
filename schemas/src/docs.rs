//! Published templates: an empty CSV and a page of documentation per input table,
//! generated from [`Table::columns`] so that what upstream systems are told can never
//! drift from what billrun validates.

use std::fmt::Write as _;

use crate::templates::{ColumnKind, Table};

/// The template CSV of `table`: its header line.
#[must_use]
pub fn template_csv(table: Table) -> String {
    let names: Vec<&str> = table.columns().iter().map(|c| c.name).collect();
    format!("{}\n", names.join(","))
}

/// An example value of a column, for the docs.
fn example(column: &str, kind: ColumnKind) -> &'static str {
    match column {
        "customer_id" => "C001",
        "product_id" | "from_product_id" | "to_product_id" => "API-CALLS",
        "plan_id" => "API-STD",
        "subscription_id" => "S-1001",
        "event_id" => "evt-000001",
        "order_id" => "O-100",
        "line_id" => "L1",
        "contract_id" => "K-2026-001",
        "credit_memo_id" => "CM-7",
        "payment_id" => "P-501",
        "invoice_id" => "INV-202610-C001-USD",
        "rule_id" => "CR-1",
        "condition_id" => "ACC-1",
        "modification_id" => "MOD-1",
        "contact_id" => "CT-1",
        "salesperson_id" => "SP-9",
        "gl_account" | "revenue_account" => "4100",
        "deferral_account" => "2410",
        "to_account" => "4600",
        "billrun_account" => "assets:receivable",
        "erp_tax_rate" => "Tax Exempt",
        "tax_region" => "US-CA",
        "email" => "billing@example.com",
        "billing_day" => "1",
        "payment_terms_days" => "30",
        "rate" => "0.0725",
        "discount_percent" | "percent" => "10",
        "ts" => "2026-10-03T09:00:00Z",
        "unit" => "call",
        "kind" => "usage",
        "model" => "graduated",
        "method" => "ratable",
        "role" => "billing",
        "type" => "revenue",
        "name" => "Acme Inc",
        _ => match kind {
            ColumnKind::Id => "X-1",
            ColumnKind::Text => "free text",
            ColumnKind::Currency => "USD",
            ColumnKind::Enum { values } => values.first().copied().unwrap_or(""),
            ColumnKind::Integer { .. } => "1",
            ColumnKind::Decimal { .. } => "12.50",
            ColumnKind::Date => "2026-10-01",
            ColumnKind::Timestamp => "2026-10-01T00:00:00Z",
        },
    }
}

/// The documentation page of `table`, in Markdown: what it holds, how it is loaded, and
/// every column with its type, whether it is required, and an example.
#[must_use]
pub fn template_markdown(table: Table) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# `{}`\n\n{}\n", table.name(), table.description());
    let _ = writeln!(
        out,
        "Files go in `{0}/` (or are named `{0}-<anything>.csv|parquet`), as CSV (UTF-8, \
         comma, header row) or Parquet. The template is `{0}.csv`.\n",
        table.name()
    );
    if table.is_transactional() {
        let _ = writeln!(out, "On import, rows are **appended**.\n");
    } else {
        let keys: Vec<String> = table
            .key_columns()
            .iter()
            .map(|k| format!("`{k}`"))
            .collect();
        let _ = writeln!(
            out,
            "On import, rows are **upserted** by {}; earlier versions are kept.\n",
            keys.join(", ")
        );
    }
    let _ = writeln!(out, "| column | type | required | example |");
    let _ = writeln!(out, "|---|---|---|---|");
    for c in table.columns() {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | `{}` |",
            c.name,
            c.kind.describe(),
            if c.required { "yes" } else { "no" },
            example(c.name, c.kind)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_templates_are_their_headers() {
        assert_eq!(
            template_csv(Table::TaxRates),
            "tax_region,rate,effective_from\n"
        );
    }

    #[test]
    fn every_column_is_documented_with_a_valid_example() {
        for table in Table::every() {
            let page = template_markdown(table);
            for c in table.columns() {
                assert!(
                    page.contains(&format!("| `{}` |", c.name)),
                    "{table} {}",
                    c.name
                );
                if let ColumnKind::Enum { values } = c.kind {
                    assert!(
                        values.contains(&example(c.name, c.kind)),
                        "{table} {}",
                        c.name
                    );
                }
            }
        }
        let usage = template_markdown(Table::Usage);
        assert!(usage.contains("| `quantity` | decimal >= 0 | yes | `12.50` |"));
        assert!(usage.contains("rows are **appended**"));
        assert!(
            template_markdown(Table::PricePlans)
                .contains("upserted** by `plan_id`, `effective_from`")
        );
    }
}
