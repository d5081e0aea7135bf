//! One invoice's lines from its charges: rounding, discount, minimum, tax, credits.
//!
//! Every line is rounded once, half away from zero, to the currency's minor unit, and
//! every total is a sum of rounded lines, so `total = Σ lines` holds exactly and is
//! checked on the way out.

use std::fmt;

use rust_decimal::Decimal;

use crate::money::round_money;
use crate::{EngineError, checked};

/// The kind of an invoice line (`invoice_lines.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LineKind {
    /// Rated usage of a product in the period.
    Usage,
    /// A prorated recurring (flat) fee.
    Recurring,
    /// Top-up to a subscription's minimum commitment.
    Minimum,
    /// A subscription's discount (negative).
    Discount,
    /// An applied credit memo (negative).
    Credit,
    /// The invoice's tax.
    Tax,
}

impl LineKind {
    /// The contract's spelling: `usage`, `recurring`, `minimum`, `discount`, `credit`,
    /// `tax`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Usage => "usage",
            Self::Recurring => "recurring",
            Self::Minimum => "minimum",
            Self::Discount => "discount",
            Self::Credit => "credit",
            Self::Tax => "tax",
        }
    }
}

impl fmt::Display for LineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A subscription's charges for the period, before rounding.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionCharges {
    /// The subscription.
    pub subscription_id: String,
    /// The subscription's plan product; used on its discount and minimum lines.
    pub product_id: String,
    /// Usage and recurring charges, unrounded, in line order.
    pub charges: Vec<Charge>,
    /// Discount in percent, `0..=100`.
    pub discount_percent: Option<Decimal>,
    /// Minimum commitment, already prorated by the caller, unrounded.
    pub min_commitment: Option<Decimal>,
}

/// One usage or recurring charge, unrounded.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    /// [`LineKind::Usage`] or [`LineKind::Recurring`].
    pub kind: LineKind,
    /// The charged product.
    pub product_id: String,
    /// Quantity shown on the line (units, or seats).
    pub quantity: Decimal,
    /// Amount at full precision.
    pub amount: Decimal,
}

/// A credit memo available to the invoice.
#[derive(Debug, Clone, PartialEq)]
pub struct CreditMemo {
    /// The memo.
    pub credit_memo_id: String,
    /// Amount still available, positive, in the currency's minor unit.
    pub amount: Decimal,
}

/// Everything one invoice is composed from.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceDraft {
    /// The currency's minor unit: the rounding unit of every line.
    pub minor_units: u32,
    /// Subscriptions in line order.
    pub subscriptions: Vec<SubscriptionCharges>,
    /// Tax rate as a fraction (0.2 = 20%).
    pub tax_rate: Decimal,
    /// Credit memos in application order (oldest first, then by id).
    pub credits: Vec<CreditMemo>,
}

/// One line of a composed invoice; `amount` is rounded to the minor unit.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceLine {
    /// What the line is.
    pub kind: LineKind,
    /// Set on charge, discount and minimum lines.
    pub subscription_id: Option<String>,
    /// Set on charge, discount and minimum lines.
    pub product_id: Option<String>,
    /// Set on credit lines.
    pub credit_memo_id: Option<String>,
    /// Set on usage and recurring lines.
    pub quantity: Option<Decimal>,
    /// The rounded amount.
    pub amount: Decimal,
}

/// A composed invoice: its lines, totals, and what is left of its credit memos.
#[derive(Debug, Clone, PartialEq)]
pub struct ComposedInvoice {
    /// Lines in order: per subscription its charges, discount and minimum; then tax;
    /// then credits.
    pub lines: Vec<InvoiceLine>,
    /// Σ usage, recurring and minimum lines.
    pub subtotal: Decimal,
    /// −Σ discount lines (positive for a discount).
    pub discount: Decimal,
    /// The tax line.
    pub tax: Decimal,
    /// −Σ credit lines (positive).
    pub credits: Decimal,
    /// `subtotal − discount + tax − credits`, equal to Σ lines.
    pub total: Decimal,
    /// What is left of each memo, only those with a remainder.
    pub open_credits: Vec<CreditMemo>,
}

/// Composes one invoice from its subscriptions' charges, tax rate and credit memos.
///
/// * Each line is rounded once, half away from zero, to `minor_units`.
/// * Per subscription, in order: its charge lines; a `discount` line of
///   `−round(discount_percent / 100 × Σ its rounded charge lines)` when
///   `discount_percent > 0`; a `minimum` line of `round(min_commitment − (Σ rounded
///   charges + discount line))` when that is positive.
/// * One `tax` line, always: `round((subtotal − discount) × tax_rate)`.
/// * Credit memos applied in order up to the balance `subtotal − discount + tax`, each
///   applied memo a negative `credit` line; remainders go to `open_credits`.
///
/// # Errors
///
/// * [`EngineError::InvalidTaxRate`] for a negative tax rate.
/// * [`EngineError::InvalidDiscount`] for a discount outside `0..=100`.
/// * [`EngineError::InvalidCommitment`] for a negative minimum commitment.
/// * [`EngineError::InvalidChargeKind`] for a charge that is not usage or recurring.
/// * [`EngineError::InvalidCreditMemo`] for a negative memo or one with more decimals
///   than the minor unit.
/// * [`EngineError::Overflow`] if a sum exceeds `Decimal`'s range.
/// * [`EngineError::Internal`] if the lines do not add up to the total (a bug).
pub fn compose_invoice(draft: &InvoiceDraft) -> Result<ComposedInvoice, EngineError> {
    if draft.tax_rate < Decimal::ZERO {
        return Err(EngineError::InvalidTaxRate {
            rate: draft.tax_rate,
        });
    }
    let minor_units = draft.minor_units;
    let mut lines = Vec::new();
    let mut subtotal = Decimal::ZERO;
    let mut discount = Decimal::ZERO;
    for subscription in &draft.subscriptions {
        let totals = compose_subscription(subscription, minor_units, &mut lines)?;
        subtotal = checked::add(subtotal, totals.billed, "invoice subtotal")?;
        discount = checked::add(discount, totals.discount, "invoice discount")?;
    }

    let taxable = checked::sub(subtotal, discount, "taxable amount")?;
    let tax = round_money(
        checked::mul(taxable, draft.tax_rate, "invoice tax")?,
        minor_units,
    );
    lines.push(InvoiceLine {
        kind: LineKind::Tax,
        subscription_id: None,
        product_id: None,
        credit_memo_id: None,
        quantity: None,
        amount: tax,
    });

    let balance = checked::add(taxable, tax, "invoice balance")?;
    let applied = apply_credits(&draft.credits, balance, minor_units, &mut lines)?;
    let total = checked::sub(balance, applied.credits, "invoice total")?;

    // Pair the invariant: totals were built from the same rounded amounts as the lines.
    let line_sum = checked::sum(lines.iter().map(|line| line.amount), "sum of invoice lines")?;
    debug_assert_eq!(line_sum, total, "invoice lines must add up to the total");
    if line_sum != total {
        return Err(EngineError::Internal {
            message: format!("invoice lines add up to {line_sum}, total is {total}"),
        });
    }
    debug_assert!(
        lines
            .iter()
            .all(|line| round_money(line.amount, minor_units) == line.amount),
        "every line is on the minor-unit grid"
    );

    // The totals are sums of rounded lines; round_money only gives them the minor
    // unit's scale so that they display like the lines.
    Ok(ComposedInvoice {
        lines,
        subtotal: round_money(subtotal, minor_units),
        discount: round_money(discount, minor_units),
        tax,
        credits: round_money(applied.credits, minor_units),
        total: round_money(total, minor_units),
        open_credits: applied.open_credits,
    })
}

/// Applies `memos`, in order, to an invoice composed without them (a correction
/// invoice, built from its own lines): each applied memo a negative `credit` line, up to
/// the invoice's total, which they never take below 0. Returns what is left of each
/// memo with a remainder, as [`ComposedInvoice::open_credits`] does.
///
/// # Errors
/// As [`compose_invoice`] for the memos: [`EngineError::InvalidCreditMemo`],
/// [`EngineError::Overflow`].
pub fn apply_credit(
    invoice: &mut ComposedInvoice,
    memos: &[CreditMemo],
    minor_units: u32,
) -> Result<Vec<CreditMemo>, EngineError> {
    let applied = apply_credits(memos, invoice.total, minor_units, &mut invoice.lines)?;
    invoice.credits = round_money(
        checked::add(invoice.credits, applied.credits, "invoice credits")?,
        minor_units,
    );
    invoice.total = round_money(
        checked::sub(invoice.total, applied.credits, "invoice total")?,
        minor_units,
    );
    Ok(applied.open_credits)
}

/// A subscription's contribution to the invoice totals.
struct SubscriptionTotals {
    /// Its rounded charge lines plus its minimum line.
    billed: Decimal,
    /// Minus its discount line.
    discount: Decimal,
}

fn compose_subscription(
    subscription: &SubscriptionCharges,
    minor_units: u32,
    lines: &mut Vec<InvoiceLine>,
) -> Result<SubscriptionTotals, EngineError> {
    if let Some(percent) = subscription.discount_percent
        && !(Decimal::ZERO..=Decimal::ONE_HUNDRED).contains(&percent)
    {
        return Err(EngineError::InvalidDiscount { percent });
    }
    if let Some(amount) = subscription.min_commitment
        && amount < Decimal::ZERO
    {
        return Err(EngineError::InvalidCommitment {
            subscription_id: subscription.subscription_id.clone(),
            amount,
        });
    }
    let line = |kind: LineKind, quantity: Option<Decimal>, product_id: &str, amount| InvoiceLine {
        kind,
        subscription_id: Some(subscription.subscription_id.clone()),
        product_id: Some(product_id.to_owned()),
        credit_memo_id: None,
        quantity,
        amount,
    };

    let mut charges = Decimal::ZERO;
    for charge in &subscription.charges {
        if !matches!(charge.kind, LineKind::Usage | LineKind::Recurring) {
            return Err(EngineError::InvalidChargeKind {
                subscription_id: subscription.subscription_id.clone(),
                product_id: charge.product_id.clone(),
                kind: charge.kind,
            });
        }
        let amount = round_money(charge.amount, minor_units);
        charges = checked::add(charges, amount, "subscription charges")?;
        lines.push(line(
            charge.kind,
            Some(charge.quantity),
            &charge.product_id,
            amount,
        ));
    }

    let mut discount_line = Decimal::ZERO;
    if let Some(percent) = subscription.discount_percent
        && percent > Decimal::ZERO
    {
        const WHAT: &str = "subscription discount";
        let discount = checked::div(
            checked::mul(charges, percent, WHAT)?,
            Decimal::ONE_HUNDRED,
            WHAT,
        )?;
        discount_line = negated(round_money(discount, minor_units));
        lines.push(line(
            LineKind::Discount,
            None,
            &subscription.product_id,
            discount_line,
        ));
    }

    let mut minimum_line = Decimal::ZERO;
    if let Some(commitment) = subscription.min_commitment {
        const WHAT: &str = "minimum commitment shortfall";
        let discounted = checked::add(charges, discount_line, WHAT)?;
        let shortfall = round_money(checked::sub(commitment, discounted, WHAT)?, minor_units);
        // A shortfall that rounds to 0 carries no money: no line.
        if shortfall > Decimal::ZERO {
            minimum_line = shortfall;
            lines.push(line(
                LineKind::Minimum,
                None,
                &subscription.product_id,
                minimum_line,
            ));
        }
    }

    Ok(SubscriptionTotals {
        billed: checked::add(charges, minimum_line, "subscription charges")?,
        discount: negated(discount_line),
    })
}

/// Credits applied to an invoice.
struct AppliedCredits {
    /// Σ applied, positive.
    credits: Decimal,
    /// What is left of each memo with a remainder.
    open_credits: Vec<CreditMemo>,
}

fn apply_credits(
    memos: &[CreditMemo],
    balance: Decimal,
    minor_units: u32,
    lines: &mut Vec<InvoiceLine>,
) -> Result<AppliedCredits, EngineError> {
    const WHAT: &str = "applied credits";
    // Credits pay an invoice down to 0; they never turn it into a refund.
    let mut remaining = balance.max(Decimal::ZERO);
    let mut credits = Decimal::ZERO;
    let mut open_credits = Vec::new();
    for memo in memos {
        let invalid = |reason: String| EngineError::InvalidCreditMemo {
            credit_memo_id: memo.credit_memo_id.clone(),
            reason,
        };
        if memo.amount < Decimal::ZERO {
            return Err(invalid(format!("amount {} is negative", memo.amount)));
        }
        if round_money(memo.amount, minor_units) != memo.amount {
            return Err(invalid(format!(
                "amount {} has more decimals than the currency's minor unit ({minor_units})",
                memo.amount
            )));
        }
        let applied = memo.amount.min(remaining);
        if applied > Decimal::ZERO {
            remaining = checked::sub(remaining, applied, WHAT)?;
            credits = checked::add(credits, applied, WHAT)?;
            lines.push(InvoiceLine {
                kind: LineKind::Credit,
                subscription_id: None,
                product_id: None,
                credit_memo_id: Some(memo.credit_memo_id.clone()),
                quantity: None,
                // Already on the grid (checked above); round_money only fixes the scale.
                amount: negated(round_money(applied, minor_units)),
            });
        }
        let left = checked::sub(memo.amount, applied, WHAT)?;
        if left > Decimal::ZERO {
            open_credits.push(CreditMemo {
                credit_memo_id: memo.credit_memo_id.clone(),
                amount: round_money(left, minor_units),
            });
        }
    }
    Ok(AppliedCredits {
        credits,
        open_credits,
    })
}

/// `−amount`, without the negative zero that would print as `-0.00`.
fn negated(amount: Decimal) -> Decimal {
    let mut negated = -amount;
    if negated.is_zero() {
        negated.set_sign_positive(true);
    }
    negated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn charge(kind: LineKind, product_id: &str, quantity: &str, amount: &str) -> Charge {
        Charge {
            kind,
            product_id: product_id.to_owned(),
            quantity: d(quantity),
            amount: d(amount),
        }
    }

    fn memo(id: &str, amount: &str) -> CreditMemo {
        CreditMemo {
            credit_memo_id: id.to_owned(),
            amount: d(amount),
        }
    }

    fn subscription(id: &str, charges: Vec<Charge>) -> SubscriptionCharges {
        SubscriptionCharges {
            subscription_id: id.to_owned(),
            product_id: format!("plan-{id}"),
            charges,
            discount_percent: None,
            min_commitment: None,
        }
    }

    /// (kind, subscription, product, memo, amount) of each line.
    fn summary(invoice: &ComposedInvoice) -> Vec<(LineKind, String, String, String, String)> {
        invoice
            .lines
            .iter()
            .map(|line| {
                (
                    line.kind,
                    line.subscription_id.clone().unwrap_or_default(),
                    line.product_id.clone().unwrap_or_default(),
                    line.credit_memo_id.clone().unwrap_or_default(),
                    line.amount.to_string(),
                )
            })
            .collect()
    }

    fn row(
        kind: LineKind,
        subscription_id: &str,
        product_id: &str,
        credit_memo_id: &str,
        amount: &str,
    ) -> (LineKind, String, String, String, String) {
        (
            kind,
            subscription_id.to_owned(),
            product_id.to_owned(),
            credit_memo_id.to_owned(),
            amount.to_owned(),
        )
    }

    #[test]
    fn composes_every_line_kind() {
        let mut a = subscription(
            "A",
            vec![
                charge(LineKind::Usage, "api", "1000", "10.005"),
                charge(LineKind::Recurring, "seat", "2", "20.004"),
            ],
        );
        a.discount_percent = Some(d("10"));
        a.min_commitment = Some(d("50"));
        let mut b = subscription("B", vec![charge(LineKind::Usage, "api", "7", "5.555")]);
        b.min_commitment = Some(d("1"));
        let draft = InvoiceDraft {
            minor_units: 2,
            subscriptions: vec![a, b],
            tax_rate: d("0.2"),
            credits: vec![memo("CM-1", "50.00"), memo("CM-2", "20"), memo("CM-3", "5")],
        };
        let invoice = compose_invoice(&draft).unwrap();
        use LineKind::*;
        assert_eq!(
            summary(&invoice),
            [
                row(Usage, "A", "api", "", "10.01"),
                row(Recurring, "A", "seat", "", "20.00"),
                // −round(10% × 30.01)
                row(Discount, "A", "plan-A", "", "-3.00"),
                // 50 − (30.01 − 3.00)
                row(Minimum, "A", "plan-A", "", "22.99"),
                row(Usage, "B", "api", "", "5.56"),
                // round((58.56 − 3.00) × 0.2) = round(11.112)
                row(Tax, "", "", "", "11.11"),
                row(Credit, "", "", "CM-1", "-50.00"),
                row(Credit, "", "", "CM-2", "-16.67"),
            ]
        );
        assert_eq!(invoice.lines[0].quantity, Some(d("1000")));
        assert_eq!(invoice.lines[2].quantity, None);
        assert_eq!(invoice.subtotal.to_string(), "58.56");
        assert_eq!(invoice.discount.to_string(), "3.00");
        assert_eq!(invoice.tax.to_string(), "11.11");
        assert_eq!(invoice.credits.to_string(), "66.67");
        assert_eq!(invoice.total.to_string(), "0.00");
        assert_eq!(
            invoice.open_credits,
            [memo("CM-2", "3.33"), memo("CM-3", "5")]
        );
    }

    #[test]
    fn empty_invoice_has_a_zero_tax_line() {
        let draft = InvoiceDraft {
            minor_units: 2,
            subscriptions: vec![subscription("A", vec![])],
            tax_rate: d("0.2"),
            credits: vec![memo("CM-1", "5.00")],
        };
        let invoice = compose_invoice(&draft).unwrap();
        assert_eq!(summary(&invoice), [row(LineKind::Tax, "", "", "", "0.00")]);
        assert_eq!(invoice.total, Decimal::ZERO);
        assert_eq!(invoice.open_credits, [memo("CM-1", "5.00")]);
    }

    #[test]
    fn zero_minor_units_round_to_whole_yen() {
        let mut a = subscription("A", vec![charge(LineKind::Usage, "api", "3", "100.5")]);
        a.discount_percent = Some(d("0"));
        a.min_commitment = Some(d("101.4"));
        let draft = InvoiceDraft {
            minor_units: 0,
            subscriptions: vec![a],
            tax_rate: d("0.1"),
            credits: vec![],
        };
        let invoice = compose_invoice(&draft).unwrap();
        // No discount line for 0%; the commitment shortfall 0.4 rounds to 0: no line.
        assert_eq!(
            summary(&invoice),
            [
                row(LineKind::Usage, "A", "api", "", "101"),
                row(LineKind::Tax, "", "", "", "10"),
            ]
        );
        assert_eq!(invoice.total, d("111"));
    }

    #[test]
    fn full_discount_and_commitment_on_discounted_charges() {
        let mut a = subscription("A", vec![charge(LineKind::Usage, "api", "1", "40")]);
        a.discount_percent = Some(d("100"));
        a.min_commitment = Some(d("25.005"));
        let draft = InvoiceDraft {
            minor_units: 2,
            subscriptions: vec![a],
            tax_rate: Decimal::ZERO,
            credits: vec![],
        };
        let invoice = compose_invoice(&draft).unwrap();
        assert_eq!(
            summary(&invoice),
            [
                row(LineKind::Usage, "A", "api", "", "40.00"),
                row(LineKind::Discount, "A", "plan-A", "", "-40.00"),
                row(LineKind::Minimum, "A", "plan-A", "", "25.01"),
                row(LineKind::Tax, "", "", "", "0.00"),
            ]
        );
        assert_eq!(invoice.subtotal, d("65.01"));
        assert_eq!(invoice.discount, d("40"));
        assert_eq!(invoice.total, d("25.01"));
    }

    #[test]
    fn credit_applied_to_a_composed_invoice_stops_at_zero() {
        // A correction of 5.50: CM-1 (3.00) is used whole, CM-2 (10.00) for 2.50.
        let mut invoice = ComposedInvoice {
            lines: vec![InvoiceLine {
                kind: LineKind::Usage,
                subscription_id: Some("S".into()),
                product_id: Some("P".into()),
                credit_memo_id: None,
                quantity: Some(d("50")),
                amount: d("5.50"),
            }],
            subtotal: d("5.50"),
            discount: Decimal::ZERO,
            tax: Decimal::ZERO,
            credits: Decimal::ZERO,
            total: d("5.50"),
            open_credits: Vec::new(),
        };
        let open = apply_credit(
            &mut invoice,
            &[memo("CM-1", "3.00"), memo("CM-2", "10.00")],
            2,
        )
        .unwrap();
        assert_eq!(open, [memo("CM-2", "7.50")]);
        assert_eq!(invoice.total.to_string(), "0.00");
        assert_eq!(invoice.credits.to_string(), "5.50");
        let credit_lines: Vec<String> = invoice.lines[1..]
            .iter()
            .map(|l| format!("{:?} {}", l.credit_memo_id, l.amount))
            .collect();
        assert_eq!(
            credit_lines,
            ["Some(\"CM-1\") -3.00", "Some(\"CM-2\") -2.50"]
        );
    }

    #[test]
    fn credits_never_exceed_a_negative_balance() {
        let a = subscription("A", vec![charge(LineKind::Usage, "api", "-1", "-3")]);
        let draft = InvoiceDraft {
            minor_units: 2,
            subscriptions: vec![a],
            tax_rate: d("0.2"),
            credits: vec![memo("CM-1", "1.00"), memo("CM-0", "0")],
        };
        let invoice = compose_invoice(&draft).unwrap();
        assert_eq!(invoice.tax, d("-0.60"));
        assert_eq!(invoice.credits, Decimal::ZERO);
        assert_eq!(invoice.total, d("-3.60"));
        assert_eq!(invoice.open_credits, [memo("CM-1", "1.00")]);
    }

    #[test]
    fn rejects_invalid_drafts() {
        let base = InvoiceDraft {
            minor_units: 2,
            subscriptions: vec![subscription(
                "A",
                vec![charge(LineKind::Usage, "api", "1", "1")],
            )],
            tax_rate: d("0.2"),
            credits: vec![],
        };

        let mut draft = base.clone();
        draft.tax_rate = d("-0.01");
        assert_eq!(
            compose_invoice(&draft),
            Err(EngineError::InvalidTaxRate { rate: d("-0.01") })
        );

        for percent in ["-1", "100.01"] {
            let mut draft = base.clone();
            draft.subscriptions[0].discount_percent = Some(d(percent));
            assert_eq!(
                compose_invoice(&draft),
                Err(EngineError::InvalidDiscount {
                    percent: d(percent)
                })
            );
        }

        let mut draft = base.clone();
        draft.subscriptions[0].min_commitment = Some(d("-5"));
        assert_eq!(
            compose_invoice(&draft),
            Err(EngineError::InvalidCommitment {
                subscription_id: "A".to_owned(),
                amount: d("-5")
            })
        );

        let mut draft = base.clone();
        draft.subscriptions[0].charges[0].kind = LineKind::Tax;
        assert_eq!(
            compose_invoice(&draft),
            Err(EngineError::InvalidChargeKind {
                subscription_id: "A".to_owned(),
                product_id: "api".to_owned(),
                kind: LineKind::Tax
            })
        );

        for (amount, reason) in [
            ("-1", "amount -1 is negative"),
            (
                "1.005",
                "amount 1.005 has more decimals than the currency's minor unit (2)",
            ),
        ] {
            let mut draft = base.clone();
            draft.credits = vec![memo("CM-9", amount)];
            assert_eq!(
                compose_invoice(&draft),
                Err(EngineError::InvalidCreditMemo {
                    credit_memo_id: "CM-9".to_owned(),
                    reason: reason.to_owned()
                })
            );
        }
    }

    #[test]
    fn line_kind_names() {
        let names: Vec<&str> = [
            LineKind::Usage,
            LineKind::Recurring,
            LineKind::Minimum,
            LineKind::Discount,
            LineKind::Credit,
            LineKind::Tax,
        ]
        .iter()
        .map(LineKind::as_str)
        .collect();
        assert_eq!(
            names,
            ["usage", "recurring", "minimum", "discount", "credit", "tax"]
        );
        assert_eq!(LineKind::Minimum.to_string(), "minimum");
    }
}
