//! The price book: currencies, products, price plans and tax rates.
//!
//! Prices are written once, in US dollars, and converted to each currency with integer
//! arithmetic in millionths of a unit ("micros"), rounded the way a pricing team would:
//! fees to the currency's minor unit, per-unit prices to the minor unit when they are
//! worth at least ten of them, and to two significant digits below that (0.0020 USD per
//! API call is 0.30 JPY and 0.00061 KWD). Every price therefore has at most six
//! fractional digits, and JPY fees are whole yen, KWD fees have three decimals.

use chrono::NaiveDate;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::calendar::{Month, ymd};

/// Micros (10⁻⁶ of a unit) to the mantissa of a `Decimal128(38, 12)`.
pub(crate) const MICROS_TO_DECIMAL: i128 = 1_000_000;
/// One whole unit as the mantissa of a `Decimal128(38, 12)`.
pub(crate) const ONE: i128 = 1_000_000_000_000;

/// A currency of the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Currency {
    Usd,
    Eur,
    Jpy,
    Kwd,
}

impl Currency {
    pub(crate) const ALL: [Currency; 4] =
        [Currency::Usd, Currency::Eur, Currency::Jpy, Currency::Kwd];

    pub(crate) fn code(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Jpy => "JPY",
            Currency::Kwd => "KWD",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// ISO 4217 minor unit: the rounding unit of invoice money.
    fn minor_units(self) -> u32 {
        match self {
            Currency::Usd | Currency::Eur => 2,
            Currency::Jpy => 0,
            Currency::Kwd => 3,
        }
    }

    /// Units of this currency per US dollar, as a fraction.
    fn per_usd(self) -> (i128, i128) {
        match self {
            Currency::Usd => (1, 1),
            Currency::Eur => (92, 100),
            Currency::Jpy => (150, 1),
            Currency::Kwd => (307, 1000),
        }
    }

    /// The currency's minor unit in micros (0.01 USD = 10 000 micros).
    fn minor_unit_micros(self) -> i64 {
        10i64.pow(6 - self.minor_units())
    }

    fn convert(self, usd_micros: i64) -> i64 {
        let (num, den) = self.per_usd();
        let micros = (i128::from(usd_micros) * num + den / 2) / den;
        i64::try_from(micros).expect("prices are far below i64::MAX micros")
    }

    /// A fee, commitment or credit worth `usd_micros`, rounded to the minor unit.
    pub(crate) fn fee(self, usd_micros: i64) -> i64 {
        round_to(self.convert(usd_micros), self.minor_unit_micros())
    }

    /// A per-unit price worth `usd_micros`: to the minor unit when it is worth ten of
    /// them, else to two significant digits (never finer than a micro).
    fn unit_price(self, usd_micros: i64) -> i64 {
        let micros = self.convert(usd_micros);
        let minor = self.minor_unit_micros();
        if micros >= 10 * minor {
            return round_to(micros, minor);
        }
        let mut quantum = 1;
        while micros >= 100 * quantum {
            quantum *= 10;
        }
        round_to(micros, quantum)
    }
}

/// Rounds a non-negative `value` half up to a multiple of `quantum`.
fn round_to(value: i64, quantum: i64) -> i64 {
    (value + quantum / 2) / quantum * quantum
}

/// How the quantity of a metered product is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Metered {
    /// API calls: whole numbers 1..=100.
    Calls,
    /// Storage: 0.001..=50.000 GB, three decimals.
    Gigabytes,
    /// Compute: 0.01..=24.00 vCPU-hours, two decimals.
    Hours,
    /// SMS: whole numbers 1..=500.
    Messages,
}

impl Metered {
    /// A quantity as the mantissa of a `Decimal128(38, 12)`; always positive.
    pub(crate) fn draw(self, rng: &mut ChaCha8Rng) -> i128 {
        match self {
            Metered::Calls => i128::from(rng.random_range(1..=100u32)) * ONE,
            Metered::Gigabytes => i128::from(rng.random_range(1..=50_000u32)) * (ONE / 1_000),
            Metered::Hours => i128::from(rng.random_range(1..=2_400u32)) * (ONE / 100),
            Metered::Messages => i128::from(rng.random_range(1..=500u32)) * ONE,
        }
    }
}

/// A product of the catalog.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Product {
    pub id: &'static str,
    pub name: &'static str,
    pub kind: &'static str,
    pub unit: &'static str,
    pub revenue_account: &'static str,
    /// How its usage is metered; `None` for recurring products.
    pub metered: Option<Metered>,
}

pub(crate) const API: usize = 0;
pub(crate) const STORAGE: usize = 1;
pub(crate) const COMPUTE: usize = 2;
pub(crate) const SMS: usize = 3;
pub(crate) const SEATS: usize = 4;
pub(crate) const SUPPORT: usize = 5;

/// The products, indexed by the constants above.
pub(crate) const PRODUCTS: [Product; 6] = [
    Product {
        id: "P-API",
        name: "API requests",
        kind: "usage",
        unit: "call",
        revenue_account: "4100",
        metered: Some(Metered::Calls),
    },
    Product {
        id: "P-STORAGE",
        name: "Object storage",
        kind: "usage",
        unit: "GB",
        revenue_account: "4100",
        metered: Some(Metered::Gigabytes),
    },
    Product {
        id: "P-COMPUTE",
        name: "Compute",
        kind: "usage",
        unit: "vCPU-hour",
        revenue_account: "4100",
        metered: Some(Metered::Hours),
    },
    Product {
        id: "P-SMS",
        name: "SMS messages",
        kind: "usage",
        unit: "message",
        revenue_account: "4110",
        metered: Some(Metered::Messages),
    },
    Product {
        id: "P-SEATS",
        name: "Platform seats",
        kind: "recurring",
        unit: "seat",
        revenue_account: "4000",
        metered: None,
    },
    Product {
        id: "P-SUPPORT",
        name: "Premium support",
        kind: "recurring",
        unit: "month",
        revenue_account: "4010",
        metered: None,
    },
];

/// The metered products, by index into [`PRODUCTS`].
pub(crate) const METERED: [usize; 4] = [API, STORAGE, COMPUTE, SMS];

/// A pricing model of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Model {
    PerUnit,
    Graduated,
    Volume,
    Package,
    Flat,
}

impl Model {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Model::PerUnit => "per_unit",
            Model::Graduated => "graduated",
            Model::Volume => "volume",
            Model::Package => "package",
            Model::Flat => "flat",
        }
    }
}

/// A tier in US dollars: (tier_start in units, unit price in micros, flat fee in micros).
type TierUsd = (u64, i64, Option<i64>);

/// A plan as priced in US dollars, before conversion to each currency.
#[derive(Debug)]
struct PlanTemplate {
    /// The middle of the plan id: `PL-<key>-<currency>`.
    key: &'static str,
    product: usize,
    model: Model,
    package_size: Option<u64>,
    /// One version, or two: the second takes effect on the 16th of the billed month.
    versions: &'static [&'static [TierUsd]],
}

const TEMPLATES: [PlanTemplate; 8] = [
    PlanTemplate {
        key: "API",
        product: API,
        model: Model::Graduated,
        package_size: None,
        versions: &[
            &[
                (0, 2_000, None),
                (100_000, 1_500, Some(5_000_000)),
                (1_000_000, 1_000, None),
            ],
            &[
                (0, 2_200, None),
                (100_000, 1_600, Some(5_000_000)),
                (1_000_000, 1_100, None),
            ],
        ],
    },
    PlanTemplate {
        key: "API-PAYG",
        product: API,
        model: Model::PerUnit,
        package_size: None,
        versions: &[&[(0, 2_500, None)]],
    },
    PlanTemplate {
        key: "STORAGE",
        product: STORAGE,
        model: Model::PerUnit,
        package_size: None,
        versions: &[&[(0, 23_000, Some(5_000_000))]],
    },
    PlanTemplate {
        key: "COMPUTE",
        product: COMPUTE,
        model: Model::Graduated,
        package_size: None,
        versions: &[&[
            (0, 120_000, None),
            (100, 100_000, None),
            (500, 80_000, Some(4_000_000)),
            (2_000, 60_000, None),
        ]],
    },
    PlanTemplate {
        key: "COMPUTE-VOL",
        product: COMPUTE,
        model: Model::Volume,
        package_size: None,
        versions: &[
            &[
                (0, 110_000, None),
                (250, 90_000, Some(2_000_000)),
                (1_000, 70_000, None),
            ],
            &[
                (0, 115_000, None),
                (300, 95_000, Some(2_000_000)),
                (1_200, 75_000, None),
            ],
        ],
    },
    PlanTemplate {
        key: "SMS",
        product: SMS,
        model: Model::Package,
        package_size: Some(1_000),
        versions: &[&[(0, 7_500_000, None)]],
    },
    PlanTemplate {
        key: "SEATS",
        product: SEATS,
        model: Model::Flat,
        package_size: None,
        versions: &[&[(0, 25_000_000, None)], &[(0, 27_000_000, None)]],
    },
    PlanTemplate {
        key: "SUPPORT",
        product: SUPPORT,
        model: Model::Flat,
        package_size: None,
        versions: &[&[(0, 150_000_000, None)]],
    },
];

/// The plans a subscription to each product may use, by index into the templates.
pub(crate) fn plan_choices(product: usize) -> &'static [usize] {
    match product {
        API => &[0, 1],
        STORAGE => &[2],
        COMPUTE => &[3, 4],
        SMS => &[5],
        SEATS => &[6],
        SUPPORT => &[7],
        _ => unreachable!("no product {product}"),
    }
}

/// One tier of a plan version, converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tier {
    pub start_units: u64,
    pub unit_price_micros: i64,
    pub flat_fee_micros: Option<i64>,
}

/// A plan version: its tiers and when it is in force (`to` exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    pub from: NaiveDate,
    pub to: Option<NaiveDate>,
    pub tiers: Vec<Tier>,
}

/// A plan in one currency.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub id: String,
    pub product: usize,
    pub currency: Currency,
    pub model: Model,
    pub package_size: Option<u64>,
    pub versions: Vec<Version>,
}

/// A tax rate in millionths (0.0725 = 72 500) in force from a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaxRate {
    pub region: &'static str,
    pub rate_micros: i64,
    pub from: NaiveDate,
}

/// Every plan in every currency, and the tax rates.
#[derive(Debug)]
pub(crate) struct Catalog {
    pub plans: Vec<Plan>,
    pub tax_rates: Vec<TaxRate>,
}

impl Catalog {
    /// The catalog of a dataset centred on `period`: plans are in force since January of
    /// four years before; changing plans get their new version on the 16th of `period`;
    /// tax rates are in force since January of six years before, and the `US-NY` rate
    /// changes on the first day of the following month, the issue date of calendar-month
    /// invoices.
    pub(crate) fn new(period: Month) -> Self {
        let since = ymd(period.year - 4, 1, 1);
        let change = period.day(16);
        let mut plans = Vec::with_capacity(TEMPLATES.len() * Currency::ALL.len());
        for template in &TEMPLATES {
            for currency in Currency::ALL {
                let starts: Vec<NaiveDate> = std::iter::once(since)
                    .chain((1..template.versions.len()).map(|_| change))
                    .collect();
                let versions = template
                    .versions
                    .iter()
                    .enumerate()
                    .map(|(i, tiers)| Version {
                        from: starts[i],
                        to: starts.get(i + 1).copied(),
                        tiers: tiers
                            .iter()
                            .map(|&(start_units, price, fee)| Tier {
                                start_units,
                                unit_price_micros: match template.model {
                                    Model::Package | Model::Flat => currency.fee(price),
                                    _ => currency.unit_price(price),
                                },
                                flat_fee_micros: fee.map(|f| currency.fee(f)),
                            })
                            .collect(),
                    })
                    .collect();
                plans.push(Plan {
                    id: format!("PL-{}-{}", template.key, currency.code()),
                    product: template.product,
                    currency,
                    model: template.model,
                    package_size: template.package_size,
                    versions,
                });
            }
        }
        let tax_since = ymd(period.year - 6, 1, 1);
        let issue_date = period.next().day(1);
        let rate = |region, rate_micros, from| TaxRate {
            region,
            rate_micros,
            from,
        };
        let tax_rates = vec![
            rate("US-CA", 72_500, tax_since),
            rate("US-NY", 80_000, tax_since),
            rate("US-NY", 88_750, issue_date),
            rate("EU-DE", 190_000, tax_since),
            rate("EU-FR", 200_000, tax_since),
            rate("JP", 100_000, tax_since),
            rate("KW", 0, tax_since),
        ];
        Self { plans, tax_rates }
    }

    /// The plan of template `template` in `currency`.
    pub(crate) fn plan(&self, template: usize, currency: Currency) -> usize {
        template * Currency::ALL.len() + currency.index()
    }

    /// Rows of the `price_plans` table: one per tier of each version.
    pub(crate) fn plan_rows(&self) -> usize {
        self.plans
            .iter()
            .flat_map(|p| &p.versions)
            .map(|v| v.tiers.len())
            .sum()
    }
}

/// Tax regions customers of `currency` are in, with weights out of 100; `None` is a
/// customer without a tax region.
pub(crate) fn tax_regions(currency: Currency) -> &'static [(Option<&'static str>, u32)] {
    match currency {
        Currency::Usd => &[(Some("US-CA"), 50), (Some("US-NY"), 35), (None, 15)],
        Currency::Eur => &[(Some("EU-DE"), 50), (Some("EU-FR"), 40), (None, 10)],
        Currency::Jpy => &[(Some("JP"), 95), (None, 5)],
        Currency::Kwd => &[(Some("KW"), 90), (None, 10)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_converted_like_a_pricing_team_would() {
        // 0.0020 USD per call.
        assert_eq!(Currency::Usd.unit_price(2_000), 2_000);
        assert_eq!(Currency::Eur.unit_price(2_000), 1_800);
        assert_eq!(Currency::Jpy.unit_price(2_000), 300_000);
        assert_eq!(Currency::Kwd.unit_price(2_000), 610);
        // 0.12 USD per vCPU-hour: whole yen, three-decimal dinars.
        assert_eq!(Currency::Jpy.unit_price(120_000), 18_000_000);
        assert_eq!(Currency::Kwd.unit_price(120_000), 37_000);
        // 25.00 USD per seat.
        assert_eq!(Currency::Eur.fee(25_000_000), 23_000_000);
        assert_eq!(Currency::Jpy.fee(25_000_000), 3_750_000_000);
        assert_eq!(Currency::Kwd.fee(25_000_000), 7_675_000);
    }

    #[test]
    fn every_price_fits_the_currency() {
        let catalog = Catalog::new(Month::new((2026, 10)));
        assert_eq!(catalog.plans.len(), 32);
        for plan in &catalog.plans {
            assert_eq!(plan.versions[0].tiers[0].start_units, 0, "{}", plan.id);
            let minor = plan.currency.minor_unit_micros();
            for v in &plan.versions {
                for t in &v.tiers {
                    assert!(t.unit_price_micros > 0, "{}", plan.id);
                    if let Some(fee) = t.flat_fee_micros {
                        assert_eq!(fee % minor, 0, "{}", plan.id);
                    }
                    if matches!(plan.model, Model::Flat | Model::Package) {
                        assert_eq!(t.unit_price_micros % minor, 0, "{}", plan.id);
                    }
                }
            }
        }
        let api = &catalog.plans[catalog.plan(0, Currency::Usd)];
        assert_eq!(api.id, "PL-API-USD");
        assert_eq!(api.versions[0].to, Some(ymd(2026, 10, 16)));
        assert_eq!(api.versions[1].from, ymd(2026, 10, 16));
    }
}
