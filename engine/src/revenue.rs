//! Revenue recognition (ASC 606 / IFRS 15): a contract's price allocated to its
//! performance obligations, carves between them, and monthly recognition schedules.
//!
//! Everything here is exact to the currency's minor unit and *telescopes*: a schedule is
//! the month-by-month difference of a cumulative curve that is rounded once per point,
//! so its months add up to the obligation's amount exactly, whatever the rounding of
//! each month, and a modification re-spreads only what was not yet recognised.

use chrono::{Datelike, Months, NaiveDate};
use rust_decimal::Decimal;

use crate::EngineError;
use crate::allocation::allocate_by_ssp;
use crate::calendar::DateWindow;
use crate::checked;
use crate::money::{decimal_from_i128_scaled, decimal_to_i128_scaled, round_money};

/// How an obligation's revenue is earned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecognitionMethod {
    /// Evenly by day over the service period.
    Ratable,
    /// All at once, on the first day of service.
    PointInTime,
    /// As the customer consumes, from rated usage (variable consideration).
    AsConsumed,
}

impl RecognitionMethod {
    /// The method as written in `rev_policies.method`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RecognitionMethod::Ratable => "ratable",
            RecognitionMethod::PointInTime => "point_in_time",
            RecognitionMethod::AsConsumed => "as_consumed",
        }
    }

    /// Parses `rev_policies.method`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Ratable, Self::PointInTime, Self::AsConsumed]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// The first day of `day`'s calendar month.
#[must_use]
pub fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// The first day of the calendar month after `day`'s.
///
/// # Errors
/// [`EngineError::Overflow`] past the end of chrono's calendar.
pub fn next_month_start(day: NaiveDate) -> Result<NaiveDate, EngineError> {
    month_start(day)
        .checked_add_months(Months::new(1))
        .ok_or(EngineError::Overflow {
            what: "calendar month",
        })
}

/// What one calendar month of a schedule recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthAmount {
    /// The first day of the month.
    pub month: NaiveDate,
    /// The amount recognised in it, on the currency's minor-unit grid.
    pub amount: Decimal,
}

/// A change to an obligation part-way through its service: from `effective` on, the
/// service ends on `new_end` (exclusive) and the price changes by `price_change`.
///
/// A cancellation is `new_end == effective`; an extension moves `new_end` past the old
/// end. What was recognised before `effective` stays as it was; what is left of the
/// (changed) price is spread over the remaining service, prospectively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modification {
    /// The first day the new terms apply.
    pub effective: NaiveDate,
    /// The new end of service (exclusive).
    pub new_end: NaiveDate,
    /// Added to the obligation's amount (negative for a refund).
    pub price_change: Decimal,
}

/// `n / d` rounded half away from zero, for `d > 0`.
fn div_round(n: i128, d: i128) -> i128 {
    let (q, r) = (n / d, n % d);
    if 2 * r.abs() >= d { q + n.signum() } else { q }
}

fn days_between(from: NaiveDate, to: NaiveDate) -> i128 {
    i128::from((to - from).num_days().max(0))
}

/// A straight-line cumulative curve: `amount × elapsed / days` in minor units, rounded
/// once at each point it is read.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: NaiveDate,
    end: NaiveDate,
    units: i128,
}

impl Line {
    fn through(&self, day: NaiveDate) -> Result<i128, EngineError> {
        let total = days_between(self.start, self.end);
        if total == 0 {
            return Ok(if day > self.start { self.units } else { 0 });
        }
        let elapsed = days_between(self.start, day.min(self.end));
        let scaled = self
            .units
            .checked_mul(elapsed)
            .ok_or(EngineError::Overflow {
                what: "ratable schedule",
            })?;
        Ok(div_round(scaled, total))
    }
}

/// The ratable schedule of `amount` over `service` (evenly by day), optionally changed
/// by a [`Modification`], one [`MonthAmount`] per calendar month from the month service
/// starts to the month it (finally) ends, in order.
///
/// Month `m` recognises `C(first day of m+1) − C(first day of m)`, where `C(x)`, the
/// amount recognised before day `x`, is `round(amount × days(start, x) / days(service))`.
/// With a modification effective on day `e`, `C(x)` for `x > e` is
/// `C(e) + round(R × days(e, x) / days(e, new_end))`, `R = amount + price_change − C(e)`
/// (all of `R` on day `e` for a cancellation). So the months always add up to
/// `amount + price_change` exactly and each month is within one minor unit of its exact
/// share.
///
/// # Errors
/// [`EngineError::InvalidSchedule`] for an empty service period, a modification outside
/// the service period or ending before it takes effect, or an amount off the minor-unit
/// grid; [`EngineError::Overflow`] for amounts too large.
pub fn ratable_schedule(
    amount: Decimal,
    service: DateWindow,
    modification: Option<&Modification>,
    minor_units: u32,
) -> Result<Vec<MonthAmount>, EngineError> {
    let invalid = |reason: String| Err(EngineError::InvalidSchedule { reason });
    if service.days() == 0 {
        return invalid(format!(
            "service period {}..{} is empty",
            service.start, service.end
        ));
    }
    let on_grid = |value: Decimal, what: &str| {
        if round_money(value, minor_units) == value {
            Ok(())
        } else {
            Err(EngineError::InvalidSchedule {
                reason: format!(
                    "{what} {value} has more decimals than the minor unit ({minor_units})"
                ),
            })
        }
    };
    on_grid(amount, "amount")?;
    let original = Line {
        start: service.start,
        end: service.end,
        units: decimal_to_i128_scaled(amount, minor_units)?,
    };
    let (after, last_day) = match modification {
        None => (None, service.last_day()),
        Some(m) => {
            on_grid(m.price_change, "price change")?;
            if m.effective < service.start || m.effective > service.end {
                return invalid(format!(
                    "modification effective {} is outside the service period {}..{}",
                    m.effective, service.start, service.end
                ));
            }
            if m.new_end < m.effective {
                return invalid(format!(
                    "modification ends service on {}, before it takes effect on {}",
                    m.new_end, m.effective
                ));
            }
            let before = original.through(m.effective)?;
            let remaining = original
                .units
                .checked_add(decimal_to_i128_scaled(m.price_change, minor_units)?)
                .and_then(|u| u.checked_sub(before))
                .ok_or(EngineError::Overflow {
                    what: "modified schedule",
                })?;
            let rest = Line {
                start: m.effective,
                end: m.new_end,
                units: remaining,
            };
            let last = if m.new_end > m.effective {
                m.new_end.pred_opt().unwrap_or(m.new_end)
            } else {
                m.effective
            };
            (Some((m.effective, before, rest)), last)
        }
    };
    let cumulative = |day: NaiveDate| -> Result<i128, EngineError> {
        match after {
            Some((effective, before, rest)) if day > effective => Ok(before + rest.through(day)?),
            _ => original.through(day),
        }
    };

    let mut months = Vec::new();
    let mut month = month_start(service.start);
    let mut recognised = 0_i128;
    while month <= last_day {
        let next = next_month_start(month)?;
        let through = cumulative(next)?;
        months.push(MonthAmount {
            month,
            amount: round_money(
                decimal_from_i128_scaled(through - recognised, minor_units)?,
                minor_units,
            ),
        });
        recognised = through;
        month = next;
    }
    Ok(months)
}

/// A point-in-time schedule: all of `amount` in the month of `on`.
#[must_use]
pub fn point_in_time_schedule(amount: Decimal, on: NaiveDate) -> Vec<MonthAmount> {
    vec![MonthAmount {
        month: month_start(on),
        amount,
    }]
}

/// One month of a schedule subject to a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldMonth {
    /// The first day of the month the amount is (or will be) recognised in.
    pub month: NaiveDate,
    /// The amount.
    pub amount: Decimal,
    /// Still held: the condition is not satisfied.
    pub held: bool,
}

/// Applies a condition (customer acceptance, say) to a schedule: while it is open
/// (`satisfied_on = None`) every month is held; once satisfied, what fell due before
/// the month of satisfaction is released in that month, and later months recognise as
/// scheduled. The amounts add up to the schedule's, exactly.
///
/// # Errors
/// [`EngineError::Overflow`] for amounts too large.
pub fn hold_until(
    schedule: &[MonthAmount],
    satisfied_on: Option<NaiveDate>,
) -> Result<Vec<HeldMonth>, EngineError> {
    let Some(satisfied_on) = satisfied_on else {
        return Ok(schedule
            .iter()
            .map(|m| HeldMonth {
                month: m.month,
                amount: m.amount,
                held: true,
            })
            .collect());
    };
    let release_month = month_start(satisfied_on);
    let due: Vec<Decimal> = schedule
        .iter()
        .filter(|m| m.month <= release_month)
        .map(|m| m.amount)
        .collect();
    let mut out = Vec::with_capacity(schedule.len());
    // Satisfied before anything fell due: nothing to release, the schedule stands.
    if !due.is_empty() {
        out.push(HeldMonth {
            month: release_month,
            amount: checked::sum(due, "released revenue")?,
            held: false,
        });
    }
    out.extend(
        schedule
            .iter()
            .filter(|m| m.month > release_month)
            .map(|m| HeldMonth {
                month: m.month,
                amount: m.amount,
                held: false,
            }),
    );
    Ok(out)
}

/// A performance obligation of a contract, as allocation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obligation {
    /// The price stated on the order line.
    pub price: Decimal,
    /// Its standalone selling price (unit SSP × quantity).
    pub ssp: Decimal,
}

/// How much a carve moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarveShare {
    /// A percentage (0–100) of the source obligation's amount at the time of the carve.
    Percent(Decimal),
    /// A fixed amount, on the minor-unit grid.
    Amount(Decimal),
}

/// Where a carve moves revenue to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarveTarget {
    /// Another obligation of the same contract (by index).
    Obligation(usize),
    /// A revenue account; the amount is recognised on the source's pattern.
    Account(String),
}

/// Moves a share of one obligation's revenue elsewhere (support carved out of a bundled
/// licence, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Carve {
    /// The obligation revenue is carved from (by index).
    pub from: usize,
    /// Where it goes.
    pub to: CarveTarget,
    /// How much.
    pub share: CarveShare,
}

/// In which order carves and the SSP allocation apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CarveOrder {
    /// Carve from stated prices first, then allocate what is left of the contract price
    /// by SSP; carved amounts are added to their targets on top of the allocation.
    CarveThenAllocate,
    /// Allocate the contract price by SSP first, then carve from the allocated amounts.
    #[default]
    AllocateThenCarve,
}

impl CarveOrder {
    /// The order as `billrun run --carve-order` and the job key `carve_order` spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CarveOrder::CarveThenAllocate => "carve-then-allocate",
            CarveOrder::AllocateThenCarve => "allocate-then-carve",
        }
    }
}

/// A carve to an account: `amount` of obligation `from`'s revenue, recognised on its
/// pattern but credited to `account`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarvedToAccount {
    /// The source obligation (by index).
    pub from: usize,
    /// The revenue account.
    pub account: String,
    /// The amount.
    pub amount: Decimal,
}

/// The result of [`allocate_contract`]. `Σ allocated + Σ carved_to_accounts.amount` is
/// the contract price (Σ stated prices) exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractAllocation {
    /// Per obligation, in input order.
    pub allocated: Vec<Decimal>,
    /// Carves to accounts, in carve order.
    pub carved_to_accounts: Vec<CarvedToAccount>,
}

/// Allocates a contract's price (Σ of its obligations' stated prices) to its obligations
/// by SSP ([`allocate_by_ssp`]) and applies `carves`, in the order `order` says.
///
/// # Errors
/// [`EngineError::InvalidAllocation`] when a carve names an obligation that does not
/// exist or itself, takes more than there is, or has a percentage outside 0–100 or an
/// amount off the minor-unit grid; and whatever [`allocate_by_ssp`] refuses.
pub fn allocate_contract(
    obligations: &[Obligation],
    carves: &[Carve],
    order: CarveOrder,
    minor_units: u32,
) -> Result<ContractAllocation, EngineError> {
    const WHAT: &str = "contract allocation";
    let invalid = |reason: String| Err(EngineError::InvalidAllocation { reason });
    for (i, carve) in carves.iter().enumerate() {
        if carve.from >= obligations.len() {
            return invalid(format!(
                "carve {i} takes from an obligation that is not in the contract"
            ));
        }
        if let CarveTarget::Obligation(to) = carve.to
            && (to >= obligations.len() || to == carve.from)
        {
            return invalid(format!(
                "carve {i} moves revenue to an obligation that is not another one of the contract"
            ));
        }
        match carve.share {
            CarveShare::Percent(p) if p < Decimal::ZERO || p > Decimal::ONE_HUNDRED => {
                return invalid(format!("carve {i}: percent {p} is outside 0..100"));
            }
            CarveShare::Amount(a) if a < Decimal::ZERO || round_money(a, minor_units) != a => {
                return invalid(format!(
                    "carve {i}: amount {a} is negative or has more decimals than the minor unit ({minor_units})"
                ));
            }
            _ => {}
        }
    }
    let price = checked::sum(obligations.iter().map(|o| o.price), WHAT)?;
    let ssps: Vec<Decimal> = obligations.iter().map(|o| o.ssp).collect();
    let share_of = |base: Decimal, share: CarveShare| -> Result<Decimal, EngineError> {
        Ok(match share {
            CarveShare::Percent(p) => round_money(
                checked::div(checked::mul(base, p, WHAT)?, Decimal::ONE_HUNDRED, WHAT)?,
                minor_units,
            ),
            CarveShare::Amount(a) => a,
        })
    };
    let mut carved_to_accounts = Vec::new();
    let allocated = match order {
        CarveOrder::AllocateThenCarve => {
            let mut allocated = allocate_by_ssp(price, &ssps, minor_units)?;
            for (i, carve) in carves.iter().enumerate() {
                let x = share_of(allocated[carve.from], carve.share)?;
                if x > allocated[carve.from] {
                    return invalid(format!(
                        "carve {i} takes {x} but its obligation has only {} allocated",
                        allocated[carve.from]
                    ));
                }
                allocated[carve.from] = checked::sub(allocated[carve.from], x, WHAT)?;
                match &carve.to {
                    CarveTarget::Obligation(to) => {
                        allocated[*to] = checked::add(allocated[*to], x, WHAT)?;
                    }
                    CarveTarget::Account(account) => carved_to_accounts.push(CarvedToAccount {
                        from: carve.from,
                        account: account.clone(),
                        amount: x,
                    }),
                }
            }
            allocated
        }
        CarveOrder::CarveThenAllocate => {
            let mut pool = price;
            let mut on_top = vec![Decimal::ZERO; obligations.len()];
            for (i, carve) in carves.iter().enumerate() {
                let x = share_of(obligations[carve.from].price, carve.share)?;
                if x > pool {
                    return invalid(format!(
                        "carve {i} takes {x} but only {pool} of the contract price is left"
                    ));
                }
                pool = checked::sub(pool, x, WHAT)?;
                match &carve.to {
                    CarveTarget::Obligation(to) => {
                        on_top[*to] = checked::add(on_top[*to], x, WHAT)?;
                    }
                    CarveTarget::Account(account) => carved_to_accounts.push(CarvedToAccount {
                        from: carve.from,
                        account: account.clone(),
                        amount: x,
                    }),
                }
            }
            let allocated = allocate_by_ssp(pool, &ssps, minor_units)?;
            allocated
                .into_iter()
                .zip(on_top)
                .map(|(a, x)| checked::add(a, x, WHAT).map(|v| round_money(v, minor_units)))
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    Ok(ContractAllocation {
        allocated,
        carved_to_accounts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn window(start: &str, end: &str) -> DateWindow {
        DateWindow {
            start: day(start),
            end: day(end),
        }
    }

    fn amounts(schedule: &[MonthAmount]) -> Vec<(String, Decimal)> {
        schedule
            .iter()
            .map(|m| (m.month.format("%Y-%m").to_string(), m.amount))
            .collect()
    }

    fn expect(pairs: &[(&str, &str)]) -> Vec<(String, Decimal)> {
        pairs
            .iter()
            .map(|(m, a)| ((*m).to_string(), d(a)))
            .collect()
    }

    #[test]
    fn ratable_year_spreads_by_days() {
        // 3650.00 over 365 days of 2026: 10.00 a day.
        let s =
            ratable_schedule(d("3650.00"), window("2026-01-01", "2027-01-01"), None, 2).unwrap();
        let expected: Vec<Decimal> = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
            .iter()
            .map(|days| Decimal::from(days * 10))
            .collect();
        assert_eq!(s.iter().map(|m| m.amount).collect::<Vec<_>>(), expected);
    }

    #[test]
    fn ratable_mid_month_start_rounds_cumulatively() {
        // 100.00 over 2026-01-16..2026-03-16 (59 days: 16 + 28 + 15).
        // C(Feb 1) = round(100 × 16/59) = 27.12; C(Mar 1) = round(100 × 44/59) = 74.58.
        let s = ratable_schedule(d("100.00"), window("2026-01-16", "2026-03-16"), None, 2).unwrap();
        assert_eq!(
            amounts(&s),
            expect(&[
                ("2026-01", "27.12"),
                ("2026-02", "47.46"),
                ("2026-03", "25.42")
            ])
        );
    }

    #[test]
    fn modification_respreads_the_rest_prospectively() {
        // 1200.00 over 2026 (365 days), extended on 2026-07-01 to 2027-07-01 with +600.00.
        // C(Jul 1) = round(1200 × 181/365) = 595.07; the rest, 1200 + 600 − 595.07 =
        // 1204.93, spreads over 365 days from Jul 1.
        let m = Modification {
            effective: day("2026-07-01"),
            new_end: day("2027-07-01"),
            price_change: d("600.00"),
        };
        let s = ratable_schedule(
            d("1200.00"),
            window("2026-01-01", "2027-01-01"),
            Some(&m),
            2,
        )
        .unwrap();
        assert_eq!(s.len(), 18);
        assert_eq!(s[0].amount, d("101.92")); // round(1200 × 31/365)
        let before: Decimal = s[..6].iter().map(|m| m.amount).sum();
        assert_eq!(before, d("595.07"));
        assert_eq!(s[6].amount, d("102.34")); // round(1204.93 × 31/365)
        assert_eq!(s.iter().map(|m| m.amount).sum::<Decimal>(), d("1800.00"));
    }

    #[test]
    fn cancellation_recognises_the_rest_on_the_day() {
        let m = Modification {
            effective: day("2026-03-15"),
            new_end: day("2026-03-15"),
            price_change: Decimal::ZERO,
        };
        let s =
            ratable_schedule(d("365.00"), window("2026-01-01", "2027-01-01"), Some(&m), 2).unwrap();
        // Jan 31.00, Feb 28.00, Mar 14 days + the remaining 292.00.
        assert_eq!(
            amounts(&s),
            expect(&[
                ("2026-01", "31.00"),
                ("2026-02", "28.00"),
                ("2026-03", "306.00")
            ])
        );
    }

    #[test]
    fn refund_on_cancellation_takes_the_rest_away() {
        let m = Modification {
            effective: day("2026-02-01"),
            new_end: day("2026-02-01"),
            price_change: d("-334.00"),
        };
        let s =
            ratable_schedule(d("365.00"), window("2026-01-01", "2027-01-01"), Some(&m), 2).unwrap();
        assert_eq!(
            amounts(&s),
            expect(&[("2026-01", "31.00"), ("2026-02", "0.00")])
        );
    }

    #[test]
    fn schedules_refuse_nonsense() {
        let w = window("2026-01-01", "2026-02-01");
        let cases = [
            (
                ratable_schedule(d("1.00"), window("2026-01-01", "2026-01-01"), None, 2),
                "service period 2026-01-01..2026-01-01 is empty",
            ),
            (
                ratable_schedule(d("1.001"), w, None, 2),
                "amount 1.001 has more decimals than the minor unit (2)",
            ),
            (
                ratable_schedule(
                    d("1.00"),
                    w,
                    Some(&Modification {
                        effective: day("2026-03-01"),
                        new_end: day("2026-04-01"),
                        price_change: Decimal::ZERO,
                    }),
                    2,
                ),
                "modification effective 2026-03-01 is outside the service period 2026-01-01..2026-02-01",
            ),
            (
                ratable_schedule(
                    d("1.00"),
                    w,
                    Some(&Modification {
                        effective: day("2026-01-10"),
                        new_end: day("2026-01-05"),
                        price_change: Decimal::ZERO,
                    }),
                    2,
                ),
                "modification ends service on 2026-01-05, before it takes effect on 2026-01-10",
            ),
        ];
        for (result, reason) in cases {
            assert_eq!(
                result,
                Err(EngineError::InvalidSchedule {
                    reason: reason.to_owned()
                })
            );
        }
    }

    #[test]
    fn held_revenue_is_released_in_the_month_of_satisfaction() {
        let s = ratable_schedule(d("300.00"), window("2026-01-01", "2026-04-01"), None, 2).unwrap();
        let open = hold_until(&s, None).unwrap();
        assert!(open.iter().all(|m| m.held));
        assert_eq!(open.iter().map(|m| m.amount).sum::<Decimal>(), d("300.00"));
        let released = hold_until(&s, Some(day("2026-02-20"))).unwrap();
        assert_eq!(
            released,
            vec![
                HeldMonth {
                    month: day("2026-02-01"),
                    amount: s[0].amount + s[1].amount,
                    held: false
                },
                HeldMonth {
                    month: day("2026-03-01"),
                    amount: s[2].amount,
                    held: false
                },
            ]
        );
    }

    #[test]
    fn a_condition_satisfied_before_service_holds_nothing() {
        let s = ratable_schedule(d("300.00"), window("2026-01-01", "2026-04-01"), None, 2).unwrap();
        let held = hold_until(&s, Some(day("2025-12-20"))).unwrap();
        assert_eq!(held.len(), 3);
        assert!(
            held.iter()
                .zip(&s)
                .all(|(h, m)| !h.held && h.month == m.month && h.amount == m.amount)
        );
    }

    /// The bundle of the revenue golden set: licence (stated 900, SSP 1000), support
    /// (stated 100, SSP 250), implementation (stated 200, SSP 250); a carve moves 10 % of
    /// the licence to support.
    fn bundle() -> (Vec<Obligation>, Vec<Carve>) {
        let o = |p: &str, s: &str| Obligation {
            price: d(p),
            ssp: d(s),
        };
        (
            vec![o("900.00", "1000"), o("100.00", "250"), o("200.00", "250")],
            vec![Carve {
                from: 0,
                to: CarveTarget::Obligation(1),
                share: CarveShare::Percent(d("10")),
            }],
        )
    }

    #[test]
    fn allocate_then_carve_by_hand() {
        // 1200 by SSP 1000:250:250 = 800, 200, 200; then 10 % of 800 = 80 to support.
        let (obligations, carves) = bundle();
        let a = allocate_contract(&obligations, &carves, CarveOrder::AllocateThenCarve, 2).unwrap();
        assert_eq!(a.allocated, vec![d("720.00"), d("280.00"), d("200.00")]);
        assert!(a.carved_to_accounts.is_empty());
    }

    #[test]
    fn carve_then_allocate_by_hand() {
        // 10 % of the stated 900 = 90 set aside for support; the other 1110 by SSP:
        // 740, 185, 185; support gets 185 + 90.
        let (obligations, carves) = bundle();
        let a = allocate_contract(&obligations, &carves, CarveOrder::CarveThenAllocate, 2).unwrap();
        assert_eq!(a.allocated, vec![d("740.00"), d("275.00"), d("185.00")]);
    }

    #[test]
    fn carve_to_an_account() {
        let (obligations, _) = bundle();
        let carves = vec![Carve {
            from: 0,
            to: CarveTarget::Account("revenue:training".into()),
            share: CarveShare::Amount(d("50.00")),
        }];
        let a = allocate_contract(&obligations, &carves, CarveOrder::AllocateThenCarve, 2).unwrap();
        assert_eq!(a.allocated, vec![d("750.00"), d("200.00"), d("200.00")]);
        assert_eq!(
            a.carved_to_accounts,
            vec![CarvedToAccount {
                from: 0,
                account: "revenue:training".into(),
                amount: d("50.00")
            }]
        );
    }

    #[test]
    fn carves_refuse_nonsense() {
        let (obligations, _) = bundle();
        let carve = |from, to, share| Carve {
            from,
            to: CarveTarget::Obligation(to),
            share,
        };
        let cases = [
            (
                carve(5, 1, CarveShare::Percent(d("1"))),
                "carve 0 takes from an obligation that is not in the contract",
            ),
            (
                carve(0, 0, CarveShare::Percent(d("1"))),
                "carve 0 moves revenue to an obligation that is not another one of the contract",
            ),
            (
                carve(0, 1, CarveShare::Percent(d("101"))),
                "carve 0: percent 101 is outside 0..100",
            ),
            (
                carve(0, 1, CarveShare::Amount(d("0.001"))),
                "carve 0: amount 0.001 is negative or has more decimals than the minor unit (2)",
            ),
            (
                carve(1, 0, CarveShare::Amount(d("500.00"))),
                "carve 0 takes 500.00 but its obligation has only 200.00 allocated",
            ),
        ];
        for (c, reason) in cases {
            assert_eq!(
                allocate_contract(&obligations, &[c], CarveOrder::AllocateThenCarve, 2),
                Err(EngineError::InvalidAllocation {
                    reason: reason.to_owned()
                })
            );
        }
    }
}
