//! Correction invoices and invoice numbers, worked by hand from "Late usage" and
//! `invoice_number` in `DATA-CONTRACT.md`.
//!
//! The original: subscription S1 of product P1 billed 1000 units for 10.00 and a
//! minimum commitment of 50.00 topped up by 40.00; tax 10 % of 50.00 = 5.00; a credit
//! memo of 5.00 applied.

use billrun_accounting::books::{correction_id, correction_lines, number_invoices};
use billrun_engine::{InvoiceLine, LineKind};
use chrono::NaiveDate;
use rust_decimal::Decimal;

fn money(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn line(kind: LineKind, amount: &str, quantity: Option<&str>) -> InvoiceLine {
    let charge = !matches!(kind, LineKind::Tax | LineKind::Credit);
    InvoiceLine {
        kind,
        subscription_id: charge.then(|| "S1".to_string()),
        product_id: charge.then(|| "P1".to_string()),
        credit_memo_id: (kind == LineKind::Credit).then(|| "CM-1".to_string()),
        quantity: quantity.map(money),
        amount: money(amount),
    }
}

fn original() -> Vec<InvoiceLine> {
    vec![
        line(LineKind::Usage, "10.00", Some("1000")),
        line(LineKind::Minimum, "40.00", None),
        line(LineKind::Tax, "5.00", None),
        line(LineKind::Credit, "-5.00", None),
    ]
}

fn amounts(lines: &[InvoiceLine]) -> Vec<(LineKind, Decimal, Option<Decimal>)> {
    lines
        .iter()
        .map(|l| (l.kind, l.amount, l.quantity))
        .collect()
}

#[test]
fn late_usage_inside_the_minimum_moves_usage_and_top_up_and_not_tax() {
    // 500 late units through a tier boundary: 1500 units cost 14.00; the top-up falls
    // to 36.00; the subtotal stays 50.00, so tax stays 5.00 and no tax line changes.
    let recomputed = vec![
        line(LineKind::Usage, "14.00", Some("1500")),
        line(LineKind::Minimum, "36.00", None),
        line(LineKind::Tax, "5.00", None),
    ];
    let lines = correction_lines(&original(), &recomputed).unwrap();
    assert_eq!(
        amounts(&lines),
        [
            (LineKind::Usage, money("4.00"), Some(money("500"))),
            (LineKind::Minimum, money("-4.00"), None),
        ]
    );
    assert_eq!(
        lines.iter().map(|l| l.amount).sum::<Decimal>(),
        Decimal::ZERO
    );
    assert_eq!(lines[0].subscription_id.as_deref(), Some("S1"));
}

#[test]
fn late_usage_past_the_minimum_removes_the_top_up_and_taxes_the_rest() {
    // 5000 late units: 6000 units cost 60.00, above the commitment: no top-up; tax 6.00.
    let recomputed = vec![
        line(LineKind::Usage, "60.00", Some("6000")),
        line(LineKind::Tax, "6.00", None),
    ];
    let lines = correction_lines(&original(), &recomputed).unwrap();
    assert_eq!(
        amounts(&lines),
        [
            (LineKind::Usage, money("50.00"), Some(money("5000"))),
            (LineKind::Minimum, money("-40.00"), None),
            // The tax line last, as on an invoice.
            (LineKind::Tax, money("1.00"), None),
        ]
    );
    // 50.00 - 40.00 + 1.00: what the customer owes on top of the original.
    assert_eq!(
        lines.iter().map(|l| l.amount).sum::<Decimal>(),
        money("11.00")
    );
}

#[test]
fn a_second_correction_bills_only_what_the_first_did_not() {
    let first = vec![
        line(LineKind::Usage, "4.00", Some("500")),
        line(LineKind::Minimum, "-4.00", None),
    ];
    let posted: Vec<InvoiceLine> = original().into_iter().chain(first).collect();
    assert_eq!(
        correction_id("INV-202610-C1-USD", 1),
        "INV-202610-C1-USD-C2"
    );
    // 200 more late units: 1700 units cost 15.60, top-up 34.40.
    let recomputed = vec![
        line(LineKind::Usage, "15.60", Some("1700")),
        line(LineKind::Minimum, "34.40", None),
        line(LineKind::Tax, "5.00", None),
    ];
    assert_eq!(
        amounts(&correction_lines(&posted, &recomputed).unwrap()),
        [
            (LineKind::Usage, money("1.60"), Some(money("200"))),
            (LineKind::Minimum, money("-1.60"), None),
        ]
    );
    // Recomputing what is already posted changes nothing: no correction.
    let same = vec![
        line(LineKind::Usage, "14.00", Some("1500")),
        line(LineKind::Minimum, "36.00", None),
        line(LineKind::Tax, "5.00", None),
    ];
    assert!(correction_lines(&posted, &same).unwrap().is_empty());
    assert_eq!(
        correction_id("INV-202610-C1-USD", 0),
        "INV-202610-C1-USD-C1"
    );
}

#[test]
fn invoice_numbers_are_gapless_by_issue_date_then_id_as_bytes() {
    let day = |d: &str| -> NaiveDate { d.parse().unwrap() };
    let numbers = number_invoices(
        8,
        [
            (day("2026-11-15"), "INV-202610-C010-USD"),
            (day("2026-11-01"), "INV-202610-c002-USD"),
            (day("2026-11-01"), "INV-202610-C002-USD"),
            (day("2026-11-01"), "INV-202609-C001-USD-C1"),
        ],
    );
    // Upper-case letters sort before lower-case ones as bytes.
    assert_eq!(
        numbers,
        [
            ("INV-202609-C001-USD-C1", 8),
            ("INV-202610-C002-USD", 9),
            ("INV-202610-c002-USD", 10),
            ("INV-202610-C010-USD", 11),
        ]
    );
}
