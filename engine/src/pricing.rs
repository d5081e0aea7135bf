//! Price models and the period charge `F(q)` of a plan version.
//!
//! A closed enum with one `match`: every model is visible in one place and adding one
//! is a compile error everywhere it must be handled.

use std::fmt;

use rust_decimal::Decimal;

use crate::EngineError;
use crate::checked;

/// How a plan turns a period's quantity into a charge (`price_plans.model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PriceModel {
    /// `q × unit_price`.
    PerUnit,
    /// Each unit priced at the tier it falls into.
    Graduated,
    /// All units priced at the single tier the total quantity reaches.
    Volume,
    /// `ceil(q / package_size) × unit_price`.
    Package,
    /// A recurring fee per period, prorated by days; not a usage model.
    Flat,
}

impl PriceModel {
    /// Parses the contract's spelling (`per_unit`, `graduated`, `volume`, `package`,
    /// `flat`); anything else, including other casings, is `None`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "per_unit" => Some(Self::PerUnit),
            "graduated" => Some(Self::Graduated),
            "volume" => Some(Self::Volume),
            "package" => Some(Self::Package),
            "flat" => Some(Self::Flat),
            _ => None,
        }
    }

    /// The contract's spelling, the inverse of [`PriceModel::parse`].
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::PerUnit => "per_unit",
            Self::Graduated => "graduated",
            Self::Volume => "volume",
            Self::Package => "package",
            Self::Flat => "flat",
        }
    }

    /// Whether the model prices usage quantities (every model but [`PriceModel::Flat`]).
    #[must_use]
    pub fn is_usage(&self) -> bool {
        !matches!(self, Self::Flat)
    }
}

impl fmt::Display for PriceModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `price_plans`: a tier of a plan version.
#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    /// Quantity above which the tier applies (`tier_start`); the first tier starts at 0.
    pub start: Decimal,
    /// Price of one unit in this tier; for [`PriceModel::Package`] the price of one
    /// package, for [`PriceModel::Flat`] the fee per period and seat.
    pub unit_price: Decimal,
    /// Fee added once when the tier is reached; 0 when not given.
    pub flat_fee: Decimal,
}

/// A validated plan version: the tiers of one `(plan_id, effective_from)`.
///
/// # Invariants
///
/// Established by [`PlanVersion::new`] and relied on by [`PlanVersion::charge`]:
/// tiers are non-empty and sorted with strictly increasing starts, the first at 0;
/// prices and fees are non-negative; per_unit, package and flat have one tier;
/// package has `package_size > 0` and only package has a package size.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanVersion {
    model: PriceModel,
    tiers: Vec<Tier>,
    package_size: Option<Decimal>,
}

impl PlanVersion {
    /// Validates a plan version; tiers may come in any order and are sorted by start.
    ///
    /// # Errors
    ///
    /// [`EngineError::InvalidPlan`] with a reason when: there are no tiers; no tier
    /// starts at 0 (or one starts below 0); two tiers start at the same quantity; a
    /// unit price or flat fee is negative; a per_unit, package or flat plan has more
    /// than one tier; a package plan lacks a `package_size > 0`; another model has a
    /// package size; a flat plan has a flat fee (its fee is its unit price).
    pub fn new(
        model: PriceModel,
        mut tiers: Vec<Tier>,
        package_size: Option<Decimal>,
    ) -> Result<Self, EngineError> {
        let invalid =
            |column: &'static str, reason: String| Err(EngineError::InvalidPlan { column, reason });

        tiers.sort_by_key(|tier| tier.start);
        let Some(lowest) = tiers.first() else {
            return invalid("tier_start", format!("{model} plan has no tiers"));
        };
        if !lowest.start.is_zero() {
            return invalid(
                "tier_start",
                format!(
                    "plan has no tier starting at 0 (the lowest tier_start is {})",
                    lowest.start
                ),
            );
        }
        if let Some(pair) = tiers.windows(2).find(|pair| pair[0].start == pair[1].start) {
            return invalid(
                "tier_start",
                format!("two tiers start at {}", pair[0].start),
            );
        }
        for tier in &tiers {
            if tier.unit_price < Decimal::ZERO {
                return invalid(
                    "unit_price",
                    format!(
                        "tier starting at {} has a negative unit_price ({})",
                        tier.start, tier.unit_price
                    ),
                );
            }
            if tier.flat_fee < Decimal::ZERO {
                return invalid(
                    "flat_fee",
                    format!(
                        "tier starting at {} has a negative flat_fee ({})",
                        tier.start, tier.flat_fee
                    ),
                );
            }
        }
        let single_tier = matches!(
            model,
            PriceModel::PerUnit | PriceModel::Package | PriceModel::Flat
        );
        if single_tier && tiers.len() != 1 {
            return invalid(
                "tier_start",
                format!("a {model} plan has exactly one tier, found {}", tiers.len()),
            );
        }
        match (model, package_size) {
            (PriceModel::Package, None) => {
                return invalid(
                    "package_size",
                    "a package plan needs a package_size".to_owned(),
                );
            }
            (PriceModel::Package, Some(size)) if size <= Decimal::ZERO => {
                return invalid(
                    "package_size",
                    format!("package_size must be greater than 0, found {size}"),
                );
            }
            (PriceModel::Package, Some(_)) | (_, None) => {}
            (_, Some(size)) => {
                return invalid(
                    "package_size",
                    format!(
                        "package_size {size} is only used by package plans, this plan is {model}"
                    ),
                );
            }
        }
        if model == PriceModel::Flat && !lowest.flat_fee.is_zero() {
            return invalid(
                "flat_fee",
                format!(
                    "a flat plan charges its unit_price per period; flat_fee must be empty or 0, \
                 found {}",
                    lowest.flat_fee
                ),
            );
        }
        Ok(Self {
            model,
            tiers,
            package_size,
        })
    }

    /// The price model.
    #[must_use]
    pub fn model(&self) -> PriceModel {
        self.model
    }

    /// The tiers, sorted by start, the first starting at 0.
    #[must_use]
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The package size; `Some` exactly for [`PriceModel::Package`].
    #[must_use]
    pub fn package_size(&self) -> Option<Decimal> {
        self.package_size
    }

    /// The tier starting at 0: the only tier of single-tier models.
    pub(crate) fn base_tier(&self) -> &Tier {
        // `new` rejects an empty tier list, so index 0 always exists.
        &self.tiers[0]
    }

    /// `F(q)`: the period charge for a total quantity `q`, at full precision (not
    /// rounded). `F(0) = 0` for every model.
    ///
    /// A tier is reached once `q` exceeds its start; a tier's flat fee is added once
    /// when it is reached (for volume, only the fee of the tier that prices the units).
    ///
    /// * per_unit: `q × unit_price`, plus the flat fee once `q > 0`.
    /// * graduated: each unit at the price of the tier it falls into, plus the flat
    ///   fee of every tier reached. Tiers 0:1.00 and 100:0.50 give `F(150) = 125.00`
    ///   and `F(100) = 100.00`.
    /// * volume: all `q` units at the last tier with `q > start`, plus that tier's
    ///   flat fee: the same tiers give `F(150) = 75.00` and `F(100) = 100.00`.
    /// * package: `ceil(q / package_size) × unit_price`, plus the flat fee once `q > 0`,
    ///   computed exactly in decimal (no float `ceil`).
    ///
    /// # Errors
    ///
    /// * [`EngineError::NotUsageModel`] for [`PriceModel::Flat`].
    /// * [`EngineError::NegativeQuantity`] if `q < 0`.
    /// * [`EngineError::Overflow`] if the charge exceeds `Decimal`'s range.
    pub fn charge(&self, q: Decimal) -> Result<Decimal, EngineError> {
        if self.model == PriceModel::Flat {
            return Err(EngineError::NotUsageModel { model: self.model });
        }
        if q < Decimal::ZERO {
            return Err(EngineError::NegativeQuantity { quantity: q });
        }
        if q.is_zero() {
            return Ok(Decimal::ZERO);
        }
        match self.model {
            PriceModel::PerUnit => self.per_unit_charge(q),
            PriceModel::Graduated => self.graduated_charge(q),
            PriceModel::Volume => self.volume_charge(q),
            PriceModel::Package => self.package_charge(q),
            PriceModel::Flat => Err(EngineError::NotUsageModel { model: self.model }),
        }
    }

    fn per_unit_charge(&self, q: Decimal) -> Result<Decimal, EngineError> {
        const WHAT: &str = "per_unit charge";
        let tier = self.base_tier();
        let units = checked::mul(q, tier.unit_price, WHAT)?;
        checked::add(units, tier.flat_fee, WHAT)
    }

    fn graduated_charge(&self, q: Decimal) -> Result<Decimal, EngineError> {
        const WHAT: &str = "graduated charge";
        let mut total = Decimal::ZERO;
        for (i, tier) in self.tiers.iter().enumerate() {
            if q <= tier.start {
                // Tiers are sorted: no later tier is reached either.
                break;
            }
            let next_start = self.tiers.get(i + 1).map(|next| next.start);
            let top = match next_start {
                Some(next_start) if q > next_start => next_start,
                _ => q,
            };
            let units = checked::sub(top, tier.start, WHAT)?;
            let slice = checked::mul(units, tier.unit_price, WHAT)?;
            total = checked::add(total, slice, WHAT)?;
            if !tier.flat_fee.is_zero() {
                total = checked::add(total, tier.flat_fee, WHAT)?;
            }
        }
        Ok(total)
    }

    fn volume_charge(&self, q: Decimal) -> Result<Decimal, EngineError> {
        const WHAT: &str = "volume charge";
        let tier = self
            .tiers
            .iter()
            .rev()
            .find(|tier| q > tier.start)
            .ok_or_else(|| EngineError::Internal {
                message: format!("no volume tier reached by quantity {q} > 0"),
            })?;
        let units = checked::mul(q, tier.unit_price, WHAT)?;
        checked::add(units, tier.flat_fee, WHAT)
    }

    fn package_charge(&self, q: Decimal) -> Result<Decimal, EngineError> {
        const WHAT: &str = "package charge";
        let size = self.package_size.ok_or_else(|| EngineError::Internal {
            message: "package plan without package_size".to_owned(),
        })?;
        let tier = self.base_tier();
        // ceil(q / size) from an exact remainder: a rounded quotient could land just
        // below an integer and lose (or gain) a package.
        let remainder = checked::rem(q, size, WHAT)?;
        let whole = checked::div(checked::sub(q, remainder, WHAT)?, size, WHAT)?;
        // `whole` is mathematically an integer; round() only guards its representation.
        let mut packages = whole.round();
        if !remainder.is_zero() {
            packages = checked::add(packages, Decimal::ONE, WHAT)?;
        }
        let units = checked::mul(packages, tier.unit_price, WHAT)?;
        checked::add(units, tier.flat_fee, WHAT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    fn tier(start: &str, unit_price: &str, flat_fee: &str) -> Tier {
        Tier {
            start: d(start),
            unit_price: d(unit_price),
            flat_fee: d(flat_fee),
        }
    }

    fn plan(model: PriceModel, tiers: &[(&str, &str, &str)], size: Option<&str>) -> PlanVersion {
        let tiers = tiers.iter().map(|&(s, p, f)| tier(s, p, f)).collect();
        PlanVersion::new(model, tiers, size.map(d)).unwrap()
    }

    /// Tiers 0:1.00 and 100:0.50, the contract's example, with optional fees.
    fn two_tiers(model: PriceModel, fee_low: &str, fee_high: &str) -> PlanVersion {
        plan(
            model,
            &[("0", "1.00", fee_low), ("100", "0.50", fee_high)],
            None,
        )
    }

    #[test]
    fn model_names_round_trip() {
        for model in [
            PriceModel::PerUnit,
            PriceModel::Graduated,
            PriceModel::Volume,
            PriceModel::Package,
            PriceModel::Flat,
        ] {
            assert_eq!(PriceModel::parse(model.as_str()), Some(model));
            assert_eq!(model.to_string(), model.as_str());
            assert_eq!(model.is_usage(), model != PriceModel::Flat);
        }
        assert_eq!(PriceModel::parse("Per_Unit"), None);
        assert_eq!(PriceModel::parse("tiered"), None);
    }

    #[test]
    fn contract_examples() {
        let graduated = two_tiers(PriceModel::Graduated, "0", "0");
        assert_eq!(graduated.charge(d("150")).unwrap(), d("125.00"));
        let volume = two_tiers(PriceModel::Volume, "0", "0");
        assert_eq!(volume.charge(d("150")).unwrap(), d("75.00"));
    }

    /// (model, low tier fee, high tier fee, quantity, expected F(q)).
    const TIER_CASES: &[(PriceModel, &str, &str, &str, &str)] = &[
        // graduated, no fees: 0, 1, edge, edge + 1, 150
        (PriceModel::Graduated, "0", "0", "0", "0"),
        (PriceModel::Graduated, "0", "0", "1", "1.00"),
        (PriceModel::Graduated, "0", "0", "100", "100.00"),
        (PriceModel::Graduated, "0", "0", "101", "100.50"),
        (PriceModel::Graduated, "0", "0", "150", "125.00"),
        (PriceModel::Graduated, "0", "0", "0.5", "0.50"),
        (PriceModel::Graduated, "0", "0", "100.000001", "100.0000005"),
        // graduated, fee of each tier reached
        (PriceModel::Graduated, "10", "5", "0", "0"),
        (PriceModel::Graduated, "10", "5", "1", "11.00"),
        (PriceModel::Graduated, "10", "5", "100", "110.00"),
        (PriceModel::Graduated, "10", "5", "101", "115.50"),
        (PriceModel::Graduated, "10", "5", "150", "140.00"),
        // volume, no fees
        (PriceModel::Volume, "0", "0", "0", "0"),
        (PriceModel::Volume, "0", "0", "1", "1.00"),
        (PriceModel::Volume, "0", "0", "100", "100.00"),
        (PriceModel::Volume, "0", "0", "101", "50.50"),
        (PriceModel::Volume, "0", "0", "150", "75.00"),
        // volume, only the pricing tier's fee
        (PriceModel::Volume, "10", "5", "0", "0"),
        (PriceModel::Volume, "10", "5", "1", "11.00"),
        (PriceModel::Volume, "10", "5", "100", "110.00"),
        (PriceModel::Volume, "10", "5", "101", "55.50"),
        (PriceModel::Volume, "10", "5", "150", "80.00"),
    ];

    #[test]
    fn tier_table() {
        for &(model, fee_low, fee_high, q, expected) in TIER_CASES {
            let version = two_tiers(model, fee_low, fee_high);
            assert_eq!(
                version.charge(d(q)).unwrap(),
                d(expected),
                "{model} fees {fee_low}/{fee_high} at q = {q}"
            );
        }
    }

    #[test]
    fn three_graduated_tiers() {
        let version = plan(
            PriceModel::Graduated,
            &[("0", "3", "0"), ("10", "2", "1"), ("20", "1", "2")],
            None,
        );
        let cases = [
            ("10", "30"),
            ("11", "33"), // 30 + 1×2 + fee 1
            ("20", "51"), // 30 + 20 + 1
            ("21", "54"), // 51 + 1×1 + fee 2
            ("25.5", "58.5"),
        ];
        for (q, expected) in cases {
            assert_eq!(version.charge(d(q)).unwrap(), d(expected), "q = {q}");
        }
    }

    #[test]
    fn package_table() {
        // size 10, 2.50 per package, fee 1 once any usage exists.
        let version = plan(PriceModel::Package, &[("0", "2.50", "1")], Some("10"));
        let cases = [
            ("0", "0"),
            ("1", "3.50"),
            ("10", "3.50"),
            ("11", "6.00"),
            ("20", "6.00"),
            ("20.000000000001", "8.50"),
        ];
        for (q, expected) in cases {
            assert_eq!(version.charge(d(q)).unwrap(), d(expected), "q = {q}");
        }
    }

    #[test]
    fn package_ceil_is_exact_for_fractional_sizes() {
        // 0.9 / 0.3 is exactly 3 packages; a binary float would say 3.0000000000000004.
        let version = plan(PriceModel::Package, &[("0", "1", "0")], Some("0.3"));
        assert_eq!(version.charge(d("0.9")).unwrap(), d("3"));
        assert_eq!(version.charge(d("0.900000000001")).unwrap(), d("4"));
        let thirds = plan(PriceModel::Package, &[("0", "1", "0")], Some("3"));
        assert_eq!(thirds.charge(d("1")).unwrap(), d("1"));
        assert_eq!(thirds.charge(d("3")).unwrap(), d("1"));
        assert_eq!(thirds.charge(d("3.000000000001")).unwrap(), d("2"));
    }

    #[test]
    fn per_unit_with_flat_fee() {
        let version = plan(PriceModel::PerUnit, &[("0", "0.25", "5")], None);
        let cases = [("0", "0"), ("1", "5.25"), ("4", "6.00"), ("0.1", "5.025")];
        for (q, expected) in cases {
            assert_eq!(version.charge(d(q)).unwrap(), d(expected), "q = {q}");
        }
    }

    #[test]
    fn charge_rejects_negative_quantities_and_flat_plans() {
        let version = plan(PriceModel::PerUnit, &[("0", "1", "0")], None);
        assert_eq!(
            version.charge(d("-1")),
            Err(EngineError::NegativeQuantity { quantity: d("-1") })
        );
        let flat = plan(PriceModel::Flat, &[("0", "49", "0")], None);
        assert_eq!(
            flat.charge(d("1")),
            Err(EngineError::NotUsageModel {
                model: PriceModel::Flat
            })
        );
    }

    #[test]
    fn charge_reports_overflow() {
        let version = plan(PriceModel::PerUnit, &[("0", "1000000", "0")], None);
        assert!(matches!(
            version.charge(Decimal::MAX),
            Err(EngineError::Overflow { .. })
        ));
    }

    #[test]
    fn new_sorts_tiers() {
        let version = plan(
            PriceModel::Graduated,
            &[("100", "0.50", "0"), ("0", "1.00", "0")],
            None,
        );
        let starts: Vec<Decimal> = version.tiers().iter().map(|t| t.start).collect();
        assert_eq!(starts, [d("0"), d("100")]);
        assert_eq!(version.model(), PriceModel::Graduated);
        assert_eq!(version.package_size(), None);
    }

    #[test]
    fn new_rejects_invalid_plans() {
        type Case<'a> = (
            PriceModel,
            &'a [(&'a str, &'a str, &'a str)],
            Option<&'a str>,
            &'a str,
        );
        let cases: &[Case<'_>] = &[
            (
                PriceModel::Graduated,
                &[],
                None,
                "graduated plan has no tiers",
            ),
            (
                PriceModel::Graduated,
                &[("10", "1", "0")],
                None,
                "plan has no tier starting at 0 (the lowest tier_start is 10)",
            ),
            (
                PriceModel::Volume,
                &[("-5", "1", "0"), ("0", "1", "0")],
                None,
                "plan has no tier starting at 0 (the lowest tier_start is -5)",
            ),
            (
                PriceModel::Graduated,
                &[("0", "1", "0"), ("100", "1", "0"), ("100", "2", "0")],
                None,
                "two tiers start at 100",
            ),
            (
                PriceModel::Graduated,
                &[("0", "1", "0"), ("100", "-0.5", "0")],
                None,
                "tier starting at 100 has a negative unit_price (-0.5)",
            ),
            (
                PriceModel::PerUnit,
                &[("0", "1", "-2")],
                None,
                "tier starting at 0 has a negative flat_fee (-2)",
            ),
            (
                PriceModel::PerUnit,
                &[("0", "1", "0"), ("10", "1", "0")],
                None,
                "a per_unit plan has exactly one tier, found 2",
            ),
            (
                PriceModel::Flat,
                &[("0", "1", "0"), ("10", "1", "0")],
                None,
                "a flat plan has exactly one tier, found 2",
            ),
            (
                PriceModel::Package,
                &[("0", "1", "0")],
                None,
                "a package plan needs a package_size",
            ),
            (
                PriceModel::Package,
                &[("0", "1", "0")],
                Some("0"),
                "package_size must be greater than 0, found 0",
            ),
            (
                PriceModel::PerUnit,
                &[("0", "1", "0")],
                Some("10"),
                "package_size 10 is only used by package plans, this plan is per_unit",
            ),
            (
                PriceModel::Flat,
                &[("0", "49", "5")],
                None,
                "a flat plan charges its unit_price per period; flat_fee must be empty or 0, \
                 found 5",
            ),
        ];
        for &(model, tiers, size, reason) in cases {
            let tiers = tiers.iter().map(|&(s, p, f)| tier(s, p, f)).collect();
            match PlanVersion::new(model, tiers, size.map(d)) {
                Err(EngineError::InvalidPlan { reason: got, .. }) => assert_eq!(got, reason),
                other => panic!("{reason}: got {other:?}"),
            }
        }
    }
}
