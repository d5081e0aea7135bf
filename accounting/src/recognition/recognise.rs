//! Recognition of each contract: allocation and carves, the schedule of every piece,
//! revenue as consumed, and what the contract bills.

use std::collections::BTreeMap;

use billrun_engine::{
    BillingMonth, Carve, CarveOrder, CarveTarget, DateWindow, HeldMonth, Modification, MonthAmount,
    Obligation, RecognitionMethod, allocate_contract, billing_window, checked, hold_until,
    minor_units, month_start, point_in_time_schedule, ratable_schedule, round_money,
};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::book::{CarveTo, ConditionRow, ContractBook, OrderLine, reject_contract};
use super::{
    AllocationRow, ConsumedUsage, ContractBilling, Recognition, RecognitionOptions, ScheduleRow,
    ScheduleStatus,
};
use crate::catalog::Catalog;
use crate::error::{AccountingError, Result};
use crate::invoicing::invoice_id;

/// A piece of a contract recognised on its own: an obligation's allocation, or an amount
/// carved from it to an account.
struct Piece<'a> {
    line: &'a OrderLine,
    amount: Decimal,
    revenue_account: String,
    carve_rule_id: Option<String>,
    ssp: Decimal,
}

/// One contract being recognised, with what every step of it needs.
#[derive(Clone, Copy)]
struct Contract<'a> {
    book: &'a ContractBook,
    catalog: &'a Catalog,
    contract_id: &'a str,
    lines: &'a [OrderLine],
    customer_id: &'a str,
    currency: &'a str,
    minor: u32,
    /// The earliest order date (or service start) of its lines.
    billed_on: NaiveDate,
    booked_month: NaiveDate,
    run_month: NaiveDate,
    as_of: NaiveDate,
}

impl ContractBook {
    /// Allocates, carves and schedules every contract as of the end of the run's calendar
    /// month.
    ///
    /// # Errors
    /// [`AccountingError::NoTaxRate`] for a contract billed to a customer whose region has
    /// no rate on the billing date; overflow.
    pub fn recognise(
        &self,
        catalog: &Catalog,
        consumed: &ConsumedUsage,
        options: RecognitionOptions,
    ) -> Result<Recognition> {
        let calendar = billing_window(options.period, 1)?;
        let run_month = calendar.start;
        let as_of = calendar.last_day();
        let mut out = Recognition {
            month: Some(run_month),
            ..Recognition::default()
        };
        for (contract_id, lines) in &self.contracts {
            let outcome = Contract::new(self, catalog, contract_id, lines, run_month, as_of)
                .and_then(|contract| contract.recognise(consumed, options.carve_order));
            match outcome {
                Ok(outcome) => {
                    out.allocations.extend(outcome.allocations);
                    out.schedule.extend(outcome.schedule);
                    out.billings.extend(outcome.billings);
                }
                Err(ContractError::Reject(why)) => {
                    reject_contract(&mut out.rejects, contract_id, lines, &why);
                }
                Err(ContractError::Fatal(e)) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The condition holding `line`, if any, and when it was satisfied (as of `as_of`):
    /// with several, revenue is released when the last one is satisfied.
    pub(super) fn condition_of(
        &self,
        line: &OrderLine,
        as_of: NaiveDate,
    ) -> (Option<String>, Option<NaiveDate>) {
        let applying: Vec<&ConditionRow> = self
            .conditions
            .iter()
            .filter(|c| {
                c.order_id == line.order_id && c.line_id.as_ref().is_none_or(|l| *l == line.line_id)
            })
            .collect();
        if applying.is_empty() {
            return (None, None);
        }
        let open = applying
            .iter()
            .find(|c| c.satisfied_on.is_none_or(|d| d > as_of));
        match open {
            Some(c) => (Some(c.condition_id.clone()), None),
            None => {
                let last = applying
                    .iter()
                    .max_by_key(|c| (c.satisfied_on, c.condition_id.clone()))
                    .copied();
                (
                    last.map(|c| c.condition_id.clone()),
                    last.and_then(|c| c.satisfied_on),
                )
            }
        }
    }
}

impl<'a> Contract<'a> {
    fn new(
        book: &'a ContractBook,
        catalog: &'a Catalog,
        contract_id: &'a str,
        lines: &'a [OrderLine],
        run_month: NaiveDate,
        as_of: NaiveDate,
    ) -> std::result::Result<Self, ContractError> {
        let first = &lines[0];
        let (customer_id, currency) = (first.customer_id.as_str(), first.currency.as_str());
        let minor = minor_units(currency)
            .ok_or_else(|| ContractError::Reject(format!("{currency} has no minor unit")))?;
        let billed_on = lines
            .iter()
            .map(|l| l.order_date.unwrap_or(l.service_start))
            .min()
            .unwrap_or(first.service_start);
        Ok(Self {
            book,
            catalog,
            contract_id,
            lines,
            customer_id,
            currency,
            minor,
            billed_on,
            booked_month: month_start(billed_on),
            run_month,
            as_of,
        })
    }

    fn recognise(
        self,
        consumed: &ConsumedUsage,
        carve_order: CarveOrder,
    ) -> std::result::Result<ContractOutcome, ContractError> {
        // Allocation over the obligations with a fixed price.
        let fixed: Vec<&OrderLine> = self
            .lines
            .iter()
            .filter(|l| l.policy.method != RecognitionMethod::AsConsumed)
            .collect();
        let pieces = self.pieces(&fixed, carve_order)?;
        let mut out = ContractOutcome::default();
        self.schedule(&pieces, &mut out)?;
        self.as_consumed(consumed, &mut out)?;
        self.billings(&fixed, &pieces, &mut out)?;
        Ok(out)
    }

    /// The obligations' allocations and the amounts carved to accounts.
    fn pieces(
        &self,
        fixed: &[&'a OrderLine],
        carve_order: CarveOrder,
    ) -> std::result::Result<Vec<Piece<'a>>, ContractError> {
        let Contract {
            book,
            catalog,
            contract_id,
            currency,
            minor,
            billed_on,
            ..
        } = *self;
        let mut ssps = Vec::with_capacity(fixed.len());
        for line in fixed {
            let unit = book.unit_ssp(catalog, line, billed_on).ok_or_else(|| {
                ContractError::Reject(format!(
                    "no SSP for product `{}` in {currency} on {billed_on} (add it to ssp or products.ssp)",
                    line.product_id
                ))
            })?;
            ssps.push(
                unit.checked_mul(line.quantity)
                    .ok_or(billrun_engine::EngineError::Overflow { what: "line SSP" })?,
            );
        }
        let mut carves = Vec::new();
        let mut carve_ids = Vec::new();
        for rule in &book.carves {
            if rule
                .contract_id
                .as_deref()
                .is_some_and(|c| c != contract_id)
                || rule.currency.as_deref().is_some_and(|c| c != currency)
            {
                continue;
            }
            let Some(from) = fixed.iter().position(|l| l.product_id == rule.from_product) else {
                continue;
            };
            let to = match &rule.to {
                CarveTo::Account(a) => CarveTarget::Account(a.clone()),
                CarveTo::Product(p) => match fixed.iter().position(|l| &l.product_id == p) {
                    Some(to) => CarveTarget::Obligation(to),
                    None => continue,
                },
            };
            carves.push(Carve {
                from,
                to,
                share: rule.share,
            });
            carve_ids.push(rule.rule_id.clone());
        }
        let mut pieces: Vec<Piece<'_>> = Vec::new();
        if !fixed.is_empty() {
            let obligations: Vec<Obligation> = fixed
                .iter()
                .zip(&ssps)
                .map(|(l, &ssp)| Obligation {
                    price: l.price,
                    ssp,
                })
                .collect();
            let allocation = allocate_contract(&obligations, &carves, carve_order, minor)
                .map_err(|e| ContractError::Reject(e.to_string()))?;
            for ((line, amount), ssp) in fixed.iter().zip(allocation.allocated).zip(&ssps) {
                pieces.push(Piece {
                    line,
                    amount,
                    revenue_account: line.policy.revenue_account.clone(),
                    carve_rule_id: None,
                    ssp: *ssp,
                });
            }
            // Carves to accounts, in carve order; the rule is the i-th applied carve.
            let mut account_carves = carves
                .iter()
                .zip(&carve_ids)
                .filter(|(c, _)| matches!(c.to, CarveTarget::Account(_)));
            for carved in allocation.carved_to_accounts {
                let rule_id = account_carves.next().map(|(_, id)| id.clone());
                pieces.push(Piece {
                    line: fixed[carved.from],
                    amount: carved.amount,
                    revenue_account: carved.account,
                    carve_rule_id: rule_id,
                    ssp: Decimal::ZERO,
                });
            }
        }

        Ok(pieces)
    }

    /// Each piece's months, held by its condition or not, and its allocation row.
    fn schedule(
        &self,
        pieces: &[Piece<'_>],
        out: &mut ContractOutcome,
    ) -> std::result::Result<(), ContractError> {
        let Contract {
            book,
            contract_id,
            customer_id,
            currency,
            minor,
            booked_month,
            run_month,
            as_of,
            ..
        } = *self;
        let status = |month: NaiveDate, held: bool| {
            if !held && month <= run_month {
                ScheduleStatus::Recognized
            } else {
                ScheduleStatus::Deferred
            }
        };
        for piece in pieces {
            let line = piece.line;
            let modification = book.modifications.get(&line.key());
            let months: Vec<MonthAmount> = match line.policy.method {
                RecognitionMethod::Ratable => {
                    let service = DateWindow {
                        start: line.service_start,
                        end: line.service_end.unwrap_or(line.service_start),
                    };
                    let change = modification.map(|m| Modification {
                        effective: m.effective,
                        new_end: m.new_end,
                        // Only the obligation's own piece is re-priced; carved pieces
                        // follow the new service period.
                        price_change: if piece.carve_rule_id.is_none() {
                            m.price_change
                        } else {
                            Decimal::ZERO
                        },
                    });
                    ratable_schedule(piece.amount, service, change.as_ref(), minor)
                        .map_err(|e| ContractError::Reject(e.to_string()))?
                }
                RecognitionMethod::PointInTime => {
                    point_in_time_schedule(piece.amount, line.service_start)
                }
                RecognitionMethod::AsConsumed => unreachable!("as-consumed lines are not pieces"),
            };
            let (condition_id, satisfied_on) = book.condition_of(line, as_of);
            let held = if condition_id.is_some() {
                hold_until(&months, satisfied_on)?
            } else {
                months
                    .iter()
                    .map(|m| HeldMonth {
                        month: m.month,
                        amount: m.amount,
                        held: false,
                    })
                    .collect()
            };
            for m in held {
                out.schedule.push(ScheduleRow {
                    invoice_id: None,
                    order_id: line.order_id.clone(),
                    line_id: line.line_id.clone(),
                    customer_id: customer_id.to_string(),
                    product_id: line.product_id.clone(),
                    month: m.month,
                    amount: m.amount,
                    currency: currency.to_string(),
                    status: status(m.month, m.held),
                    contract_id: contract_id.to_string(),
                    method: line.policy.method,
                    revenue_account: piece.revenue_account.clone(),
                    deferral_account: Some(line.policy.deferral_account.clone()),
                    condition_id: condition_id.clone(),
                    held: m.held,
                    booked_month,
                });
            }
            out.allocations.push(AllocationRow {
                contract_id: contract_id.to_string(),
                order_id: line.order_id.clone(),
                line_id: line.line_id.clone(),
                customer_id: customer_id.to_string(),
                product_id: line.product_id.clone(),
                currency: currency.to_string(),
                method: line.policy.method,
                stated_price: if piece.carve_rule_id.is_none() {
                    line.price
                } else {
                    Decimal::ZERO
                },
                ssp: piece.ssp,
                allocated: piece.amount,
                revenue_account: piece.revenue_account.clone(),
                deferral_account: Some(line.policy.deferral_account.clone()),
                carve_rule_id: piece.carve_rule_id.clone(),
            });
        }

        Ok(())
    }

    /// As consumed: this run's rated usage, by month, rounded once per month.
    fn as_consumed(
        &self,
        consumed: &ConsumedUsage,
        out: &mut ContractOutcome,
    ) -> std::result::Result<(), ContractError> {
        let Contract {
            contract_id,
            customer_id,
            currency,
            minor,
            run_month,
            ..
        } = *self;
        let invoice = invoice_id(
            BillingMonth {
                year: chrono::Datelike::year(&run_month),
                month: chrono::Datelike::month(&run_month),
            },
            customer_id,
            currency,
        );
        for line in self
            .lines
            .iter()
            .filter(|l| l.policy.method == RecognitionMethod::AsConsumed)
        {
            let key = (
                line.customer_id.clone(),
                line.product_id.clone(),
                line.currency.clone(),
            );
            let mut total = Decimal::ZERO;
            for (month, amount) in consumed.by_month(&key, line.service_start, line.service_end)? {
                let amount = round_money(amount, minor);
                total = checked::add(total, amount, "revenue recognised as consumed")?;
                out.schedule.push(ScheduleRow {
                    invoice_id: Some(invoice.clone()),
                    order_id: line.order_id.clone(),
                    line_id: line.line_id.clone(),
                    customer_id: customer_id.to_string(),
                    product_id: line.product_id.clone(),
                    month,
                    amount,
                    currency: currency.to_string(),
                    status: ScheduleStatus::Recognized,
                    contract_id: contract_id.to_string(),
                    method: RecognitionMethod::AsConsumed,
                    revenue_account: line.policy.revenue_account.clone(),
                    deferral_account: None,
                    condition_id: None,
                    held: false,
                    booked_month: month,
                });
            }
            out.allocations.push(AllocationRow {
                contract_id: contract_id.to_string(),
                order_id: line.order_id.clone(),
                line_id: line.line_id.clone(),
                customer_id: customer_id.to_string(),
                product_id: line.product_id.clone(),
                currency: currency.to_string(),
                method: RecognitionMethod::AsConsumed,
                stated_price: Decimal::ZERO,
                ssp: Decimal::ZERO,
                allocated: total,
                revenue_account: line.policy.revenue_account.clone(),
                deferral_account: None,
                carve_rule_id: None,
            });
        }

        Ok(())
    }

    /// Billing: the contract on its order date, each price change on its date.
    fn billings(
        &self,
        fixed: &[&OrderLine],
        pieces: &[Piece<'_>],
        out: &mut ContractOutcome,
    ) -> std::result::Result<(), ContractError> {
        let Contract {
            book,
            catalog,
            contract_id,
            customer_id,
            currency,
            minor,
            billed_on,
            ..
        } = *self;
        let tax_rate = |on: NaiveDate| -> std::result::Result<Decimal, ContractError> {
            let customer = catalog.customers.get(customer_id);
            match customer.and_then(|c| c.tax_region.as_deref()) {
                None => Ok(Decimal::ZERO),
                Some(region) => {
                    if let Some(refused) = catalog.refused_tax_rate(region, on) {
                        return Err(ContractError::Fatal(AccountingError::RefusedTaxRate {
                            customer_id: customer_id.to_string(),
                            tax_region: region.to_string(),
                            date: on,
                            why: refused.why.clone(),
                        }));
                    }
                    catalog.tax_rate(region, on).ok_or_else(|| {
                        ContractError::Fatal(AccountingError::NoTaxRate {
                            customer_id: customer_id.to_string(),
                            tax_region: region.to_string(),
                            date: on,
                        })
                    })
                }
            }
        };
        let bill = |billing_id: String,
                    on: NaiveDate,
                    deferred: BTreeMap<String, Decimal>,
                    modification_id: Option<String>|
         -> std::result::Result<ContractBilling, ContractError> {
            let amount = checked::sum(deferred.values().copied(), "contract billing")?;
            let tax = round_money(checked::mul(amount, tax_rate(on)?, "contract tax")?, minor);
            Ok(ContractBilling {
                billing_id,
                contract_id: contract_id.to_string(),
                customer_id: customer_id.to_string(),
                currency: currency.to_string(),
                billed_on: on,
                amount: round_money(amount, minor),
                tax,
                total: round_money(checked::add(amount, tax, "contract billing total")?, minor),
                modification_id,
                deferred,
            })
        };
        if !pieces.is_empty() {
            let mut deferred: BTreeMap<String, Decimal> = BTreeMap::new();
            for piece in pieces {
                let sum = deferred
                    .entry(piece.line.policy.deferral_account.clone())
                    .or_default();
                *sum = checked::add(*sum, piece.amount, "contract billing")?;
            }
            out.billings.push(bill(
                format!("CB-{contract_id}"),
                billed_on,
                deferred,
                None,
            )?);
        }
        for line in fixed {
            if let Some(m) = book.modifications.get(&line.key())
                && !m.price_change.is_zero()
            {
                let deferred =
                    BTreeMap::from([(line.policy.deferral_account.clone(), m.price_change)]);
                out.billings.push(bill(
                    format!("CB-{}", m.modification_id),
                    m.effective,
                    deferred,
                    Some(m.modification_id.clone()),
                )?);
            }
        }
        Ok(())
    }
}

/// What one contract adds to the run's recognition.
#[derive(Default)]
struct ContractOutcome {
    allocations: Vec<AllocationRow>,
    schedule: Vec<ScheduleRow>,
    billings: Vec<ContractBilling>,
}

enum ContractError {
    /// The contract cannot be recognised; its lines are rejected with this reason.
    Reject(String),
    /// The run cannot go on.
    Fatal(AccountingError),
}

impl From<billrun_engine::EngineError> for ContractError {
    fn from(e: billrun_engine::EngineError) -> Self {
        ContractError::Fatal(e.into())
    }
}

impl From<AccountingError> for ContractError {
    fn from(e: AccountingError) -> Self {
        ContractError::Fatal(e)
    }
}
