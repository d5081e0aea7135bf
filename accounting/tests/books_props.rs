//! The books' rules: hand-worked cases from "The books" in `DATA-CONTRACT.md`, and the
//! paired invariant that no money is created or destroyed by applying it.

use billrun_accounting::books::{
    Application, Credit, Receivable, ReceivableStatus, SourceKind, apply_cash, apply_credits,
    apply_payment, ar_aging, receivables_on,
};
use billrun_accounting::ledger::Payment;
use chrono::NaiveDate;
use proptest::prelude::*;
use rust_decimal::Decimal;

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn money(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn invoice(id: &str, customer: &str, currency: &str, due: &str, total: &str) -> Receivable {
    Receivable {
        invoice_id: id.into(),
        customer_id: customer.into(),
        currency: currency.into(),
        issue_date: day("2026-09-01"),
        due_date: day(due),
        total: money(total),
        paid: Decimal::ZERO,
        credited: Decimal::ZERO,
    }
}

fn payment(id: &str, customer: &str, amount: &str, invoice_id: Option<&str>) -> Payment {
    Payment {
        payment_id: id.into(),
        customer_id: customer.into(),
        currency: "USD".into(),
        amount: money(amount),
        paid_on: day("2026-10-20"),
        invoice_id: invoice_id.map(str::to_string),
        method: None,
    }
}

#[test]
fn open_status_and_days_past_due_follow_the_contract() {
    let mut r = invoice("INV-1", "C1", "USD", "2026-10-01", "100.00");
    assert_eq!(r.status().unwrap(), ReceivableStatus::Open);
    // 31 days from the due date to as_of 2026-11-01.
    assert_eq!(r.days_past_due(day("2026-11-01")).unwrap(), 31);
    // Not yet due: 0, never negative.
    assert_eq!(r.days_past_due(day("2026-09-15")).unwrap(), 0);
    r.paid = money("40.00");
    assert_eq!(r.open().unwrap(), money("60.00"));
    assert_eq!(r.status().unwrap(), ReceivableStatus::PartiallyPaid);
    r.paid = money("100.00");
    assert_eq!(r.status().unwrap(), ReceivableStatus::Paid);
    // Nothing open: not past due, however late.
    assert_eq!(r.days_past_due(day("2027-06-01")).unwrap(), 0);
    // A credit note is settled by becoming credit.
    let mut note = invoice("INV-1-C1", "C1", "USD", "2026-11-30", "-12.50");
    note.credited = money("-12.50");
    assert_eq!(note.open().unwrap(), Decimal::ZERO);
    assert_eq!(note.status().unwrap().as_str(), "paid");
}

#[test]
fn a_named_invoice_is_paid_first_then_the_oldest_due_and_the_rest_is_unapplied() {
    let mut open = vec![
        invoice("INV-B", "C1", "USD", "2026-09-15", "50.00"),
        invoice("INV-A", "C1", "USD", "2026-09-15", "30.00"),
        invoice("INV-N", "C1", "USD", "2026-10-15", "40.00"),
        invoice("INV-E", "C1", "EUR", "2026-08-01", "99.00"),
        invoice("INV-O", "C2", "USD", "2026-08-01", "99.00"),
    ];
    // 130: 40 to the named INV-N, then INV-A (same due date as INV-B, id first), INV-B,
    // and 10 left over. The EUR invoice and the other customer's are not touched.
    let (applications, rest) =
        apply_payment(&payment("P1", "C1", "130.00", Some("INV-N")), &mut open)
            .unwrap()
            .unwrap();
    let applied: Vec<(&str, Decimal)> = applications
        .iter()
        .map(|a| (a.invoice_id.as_str(), a.amount))
        .collect();
    assert_eq!(
        applied,
        [
            ("INV-N", money("40.00")),
            ("INV-A", money("30.00")),
            ("INV-B", money("50.00")),
        ]
    );
    assert_eq!(rest, money("10.00"));
    assert!(
        applications
            .iter()
            .all(|a| a.source_kind == SourceKind::Payment
                && a.source_id == "P1"
                && a.applied_on == day("2026-10-20"))
    );
    assert_eq!(open[3].paid, Decimal::ZERO);
    assert_eq!(open[4].paid, Decimal::ZERO);

    // The unapplied 10 pays the next invoice when it comes.
    open.push(invoice("INV-X", "C1", "USD", "2026-12-01", "25.00"));
    let (applications, rest) = apply_cash(
        &mut open,
        "P1",
        SourceKind::UnappliedCash,
        "C1",
        "USD",
        money("10.00"),
        day("2026-11-01"),
    )
    .unwrap();
    assert_eq!(applications.len(), 1);
    assert_eq!(applications[0].invoice_id, "INV-X");
    assert_eq!(open[5].open().unwrap(), money("15.00"));
    assert_eq!(rest, Decimal::ZERO);
}

#[test]
fn a_payment_naming_an_invoice_the_customer_lacks_in_its_currency_is_rejected() {
    let mut open = vec![invoice("INV-E", "C1", "EUR", "2026-09-01", "10.00")];
    let outcome = apply_payment(&payment("P9", "C1", "10.00", Some("INV-E")), &mut open).unwrap();
    assert_eq!(
        outcome.unwrap_err().to_string(),
        "payment `P9` names invoice `INV-E`, which customer `C1` does not have in USD"
    );
    assert_eq!(open[0].paid, Decimal::ZERO);
}

#[test]
fn credit_is_used_oldest_first_and_what_is_left_carries() {
    let credit = |id: &str, kind, issued: &str, amount: &str| Credit {
        credit_id: id.into(),
        kind,
        customer_id: "C1".into(),
        currency: "USD".into(),
        issued_on: day(issued),
        amount: money(amount),
        remaining: money(amount),
    };
    let mut credits = vec![
        credit("INV-7-C1", SourceKind::CreditNote, "2026-10-01", "5.00"),
        credit("CM-2", SourceKind::CreditMemo, "2026-09-01", "30.00"),
        credit("CM-1", SourceKind::CreditMemo, "2026-09-01", "20.00"),
    ];
    let used = apply_credits(&mut credits, "C1", "USD", money("45.00")).unwrap();
    assert_eq!(
        used,
        [
            ("CM-1".to_string(), SourceKind::CreditMemo, money("20.00")),
            ("CM-2".to_string(), SourceKind::CreditMemo, money("25.00")),
        ]
    );
    let left: Vec<Decimal> = credits.iter().map(|c| c.remaining).collect();
    assert_eq!(left, [money("5.00"), money("5.00"), money("0.00")]);
}

#[test]
fn aging_buckets_by_days_past_due_per_customer_and_currency() {
    let as_of = day("2026-11-01");
    let mut partly = invoice("I4", "C1", "USD", "2026-07-01", "80.00");
    partly.paid = money("30.00");
    let rows = ar_aging(
        &[
            invoice("I1", "C1", "USD", "2026-11-01", "10.00"), // due today: current
            invoice("I2", "C1", "USD", "2026-10-02", "20.00"), // 30 days
            invoice("I3", "C1", "USD", "2026-09-01", "40.00"), // 61 days
            partly,                                            // 123 days, 50 open
            invoice("I5", "C1", "EUR", "2026-10-01", "7.00"),  // 31 days
            invoice("I6", "C2", "USD", "2026-10-01", "0.00"),  // nothing open: no row
        ],
        as_of,
    )
    .unwrap();
    let flat: Vec<(&str, &str, [Decimal; 6])> = rows
        .iter()
        .map(|r| {
            (
                r.customer_id.as_str(),
                r.currency.as_str(),
                [
                    r.current,
                    r.past_due_1_30,
                    r.past_due_31_60,
                    r.past_due_61_90,
                    r.past_due_over_90,
                    r.total,
                ],
            )
        })
        .collect();
    let z = Decimal::ZERO;
    assert_eq!(
        flat,
        [
            ("C1", "EUR", [z, z, money("7.00"), z, z, money("7.00")]),
            (
                "C1",
                "USD",
                [
                    money("10.00"),
                    money("20.00"),
                    z,
                    money("40.00"),
                    money("50.00"),
                    money("120.00")
                ]
            ),
        ]
    );
}

#[test]
fn aging_on_a_past_day_counts_only_what_was_issued_and_paid_before_it() {
    let mut posted = vec![
        invoice("I1", "C1", "USD", "2026-10-01", "100.00"),
        invoice("I2", "C1", "USD", "2026-11-15", "60.00"),
    ];
    posted[1].issue_date = day("2026-11-01");
    posted[0].paid = money("100.00"); // as the books hold it today
    let applied = |source: &str, kind, invoice_id: &str, amount: &str, on: &str| Application {
        source_id: source.into(),
        source_kind: kind,
        invoice_id: invoice_id.into(),
        amount: money(amount),
        applied_on: day(on),
        paid_on: None,
    };
    let applications = [
        applied("P1", SourceKind::Payment, "I1", "30.00", "2026-10-10"),
        // Paid on the report's day: it counts from the next day on.
        applied("P2", SourceKind::Payment, "I1", "50.00", "2026-10-20"),
        applied("P2", SourceKind::UnappliedCash, "I1", "20.00", "2026-11-01"),
        // A credit memo is a line inside I1's total: not paid again.
        applied("CM-1", SourceKind::CreditMemo, "I1", "5.00", "2026-09-01"),
    ];
    let on = receivables_on(&posted, &applications, day("2026-10-20")).unwrap();
    assert_eq!(on.len(), 1, "I2 was issued after the day");
    assert_eq!(on[0].paid, money("30.00"));
    let rows = ar_aging(&on, day("2026-10-20")).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].past_due_1_30, money("70.00"));
    assert_eq!(rows[0].total, money("70.00"));
    // On 2026-11-02 everything applied so far counts: I1 is paid, I2 is current.
    let later = receivables_on(&posted, &applications, day("2026-11-02")).unwrap();
    let rows = ar_aging(&later, day("2026-11-02")).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].current, rows[0].total),
        (money("60.00"), money("60.00"))
    );
}

proptest! {
    /// Applying a payment neither creates nor destroys money: applications plus the rest
    /// equal the payment, no invoice is paid beyond its total, and the open amounts go
    /// down by exactly what was applied.
    #[test]
    fn a_payment_is_applied_or_left_over_to_the_cent(
        totals in proptest::collection::vec(0i64..100_000, 0..8),
        paid in proptest::collection::vec(0i64..100_000, 8),
        dues in proptest::collection::vec(0u32..60, 8),
        amount in 0i64..500_000,
        named in proptest::option::of(0usize..8),
    ) {
        let mut open: Vec<Receivable> = totals
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let mut r = invoice(&format!("INV-{i}"), "C1", "USD", "2026-09-01", "0");
                r.total = Decimal::new(t, 2);
                r.paid = Decimal::new(paid[i].min(t), 2);
                r.due_date = day("2026-09-01") + chrono::Days::new(u64::from(dues[i]));
                r
            })
            .collect();
        let before: Decimal = open.iter().map(|r| r.open().unwrap()).sum();
        let named = named.filter(|&n| n < open.len()).map(|n| format!("INV-{n}"));
        let p = payment("P", "C1", "0", named.as_deref());
        let p = Payment { amount: Decimal::new(amount, 2), ..p };
        let (applications, rest) = apply_payment(&p, &mut open).unwrap().unwrap();
        let applied: Decimal = applications.iter().map(|a| a.amount).sum();
        prop_assert_eq!(applied + rest, p.amount);
        prop_assert!(rest >= Decimal::ZERO);
        prop_assert!(applications.iter().all(|a| a.amount > Decimal::ZERO));
        for r in &open {
            prop_assert!(r.open().unwrap() >= Decimal::ZERO, "{} over-paid", r.invoice_id);
        }
        let after: Decimal = open.iter().map(|r| r.open().unwrap()).sum();
        prop_assert_eq!(before - after, applied);
        // Cash is left over only when nothing is open any more.
        if rest > Decimal::ZERO {
            prop_assert_eq!(after, Decimal::ZERO);
        }
    }
}

/// The books' tables carry the contract's columns, in its order, and a receivable's
/// derived columns as the rules give them.
#[test]
fn the_books_tables_have_the_contract_columns() {
    use arrow::array::{AsArray, Int32Array, Int64Array};
    use billrun_accounting::books::{applications_batch, ar_aging_batch, receivables_batch};
    let names = |b: &arrow::array::RecordBatch| -> Vec<String> {
        b.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    };
    let as_of = day("2026-11-01");
    let mut partly = invoice("INV-1", "C1", "USD", "2026-10-01", "100.00");
    partly.paid = money("40.00");
    let receivables = receivables_batch(
        &[
            (partly.clone(), Some(7)),
            (invoice("INV-2", "C1", "USD", "2026-12-01", "5.00"), None),
        ],
        as_of,
    )
    .unwrap();
    assert_eq!(
        names(&receivables),
        [
            "invoice_id",
            "invoice_number",
            "customer_id",
            "currency",
            "issue_date",
            "due_date",
            "total",
            "paid",
            "credited",
            "open",
            "status",
            "days_past_due"
        ]
    );
    let numbers: &Int64Array = receivables.column(1).as_primitive();
    assert_eq!(numbers.iter().collect::<Vec<_>>(), [Some(7), None]);
    let status: Vec<&str> = receivables
        .column(10)
        .as_string::<i32>()
        .iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(status, ["partially_paid", "open"]);
    let days: &Int32Array = receivables.column(11).as_primitive();
    assert_eq!(days.values().to_vec(), [31, 0]);
    let open = receivables
        .column(9)
        .as_primitive::<arrow::datatypes::Decimal128Type>();
    // 60.00 at the money scale of 4.
    assert_eq!(open.value(0), 600_000);

    let aging = ar_aging_batch(&ar_aging(&[partly], as_of).unwrap()).unwrap();
    assert_eq!(
        names(&aging),
        [
            "customer_id",
            "currency",
            "as_of",
            "current",
            "past_due_1_30",
            "past_due_31_60",
            "past_due_61_90",
            "past_due_over_90",
            "total"
        ]
    );
    assert_eq!(aging.num_rows(), 1);
    let applications = applications_batch(&[Application {
        source_id: "P1".into(),
        source_kind: SourceKind::UnappliedCash,
        invoice_id: "INV-1".into(),
        amount: money("40.00"),
        applied_on: as_of,
        paid_on: None,
    }])
    .unwrap();
    assert_eq!(
        names(&applications),
        [
            "source_id",
            "source_kind",
            "invoice_id",
            "amount",
            "applied_on"
        ]
    );
    assert_eq!(
        applications.column(1).as_string::<i32>().value(0),
        "unapplied_cash"
    );
}
