//! Master data: customers, their subscriptions and credit memos, and what the usage
//! generator needs to know about them (who is active on which product when, and how
//! much each customer uses).

use chrono::NaiveDate;
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::GenerateOptions;
use crate::calendar::{Month, Window, add_days, sub_days};
use crate::catalog::{self, Catalog, Currency, METERED, PRODUCTS, plan_choices};
use crate::rng::{self, Stream};

/// Largest number of customers: ids have at most eight digits, and the all-nines id of
/// that width is the unknown one.
pub(crate) const MAX_CUSTOMERS: usize = 99_999_998;

/// Digits of a customer id: six up to 999 998 customers (`C000001` .. and `C999999` for
/// the unknown one, the bytes of every dataset generated before the ceiling was lifted),
/// as many as the unknown id `customers + 1` needs above that.
fn customer_id_width(customers: usize) -> usize {
    (customers + 1).to_string().len().max(6)
}

/// The first customers are fixed so that even a tiny dataset covers every currency,
/// billing day and tax situation: (currency, billing day, tax region).
const COVERAGE: [(Currency, u32, Option<&str>); 7] = [
    (Currency::Usd, 1, Some("US-CA")),
    (Currency::Eur, 1, Some("EU-DE")),
    (Currency::Jpy, 1, Some("JP")),
    (Currency::Kwd, 1, Some("KW")),
    (Currency::Usd, 5, Some("US-NY")),
    (Currency::Eur, 15, Some("EU-FR")),
    (Currency::Usd, 28, None),
];

const NAME_FIRST: [&str; 24] = [
    "Acme",
    "Aurora",
    "Basalt",
    "Beacon",
    "Cedar",
    "Cobalt",
    "Delta",
    "Ember",
    "Fjord",
    "Granite",
    "Harbor",
    "Helios",
    "Indigo",
    "Juniper",
    "Kestrel",
    "Lumen",
    "Meridian",
    "Nimbus",
    "Onyx",
    "Pinnacle",
    "Quasar",
    "Redwood",
    "Summit",
    "Tidewater",
];
const NAME_SECOND: [&str; 16] = [
    "Analytics",
    "Cloud",
    "Data",
    "Devices",
    "Energy",
    "Freight",
    "Health",
    "Labs",
    "Logistics",
    "Media",
    "Networks",
    "Payments",
    "Retail",
    "Robotics",
    "Software",
    "Telecom",
];
const MAILBOXES: [&str; 4] = ["billing", "ap", "finance", "invoices"];
const MEMO_REASONS: [&str; 5] = [
    "SLA credit for a service outage",
    "Goodwill credit",
    "Billing dispute settlement",
    "Referral credit",
    "Seat over-billing correction",
];

fn legal_suffix(currency: Currency, pick: usize) -> &'static str {
    let suffixes: &[&str] = match currency {
        Currency::Usd => &["Inc.", "LLC", "Corp."],
        Currency::Eur => &["GmbH", "SARL", "B.V."],
        Currency::Jpy => &["KK"],
        Currency::Kwd => &["W.L.L.", "K.S.C."],
    };
    suffixes[pick % suffixes.len()]
}

/// A customer.
#[derive(Debug, Clone)]
pub(crate) struct Customer {
    pub id: String,
    pub name: String,
    pub currency: Currency,
    pub billing_day: u32,
    pub payment_terms_days: Option<i64>,
    pub tax_region: Option<&'static str>,
    pub email: Option<String>,
    /// The billing window of the generated period.
    pub window: Window,
}

/// A subscription (`end` exclusive).
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub id: String,
    pub customer: usize,
    pub plan: usize,
    pub start: NaiveDate,
    pub end: Option<NaiveDate>,
    /// Seats (units of a `flat` plan).
    pub quantity: Option<u32>,
    pub discount_percent: Option<u32>,
    /// In micros of the plan's currency, a whole number of minor units.
    pub min_commitment_micros: Option<i64>,
}

/// A credit memo.
#[derive(Debug, Clone)]
pub(crate) struct CreditMemo {
    pub id: String,
    pub customer: usize,
    pub currency: Currency,
    pub amount_micros: i64,
    pub issued_on: NaiveDate,
    pub reason: &'static str,
}

/// Where a customer's usage of one product can fall: the part of the billing window in
/// which a subscription to it is active, in microseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub product: usize,
    pub start_us: i64,
    pub span_us: u64,
}

/// The dataset's master data, and the tables the usage generator samples from.
#[derive(Debug)]
pub(crate) struct World {
    pub period: Month,
    pub event_id_prefix: String,
    /// The customer id that usage of an unknown customer carries: all nines, as wide as
    /// the known ids, so that it sorts after them and never names one of them.
    pub unknown_customer: String,
    pub catalog: Catalog,
    pub customers: Vec<Customer>,
    pub subscriptions: Vec<Subscription>,
    pub credit_memos: Vec<CreditMemo>,
    /// Targets of all customers; customer `c` owns `targets[target_ranges[c]]`.
    targets: Vec<Target>,
    target_ranges: Vec<(u32, u32)>,
    /// The month before each customer's window (start, length in µs): where the usage
    /// that lies outside the billed period goes.
    before_window: Vec<(i64, u64)>,
    /// Cumulative usage weights by volume rank, and the customer of each rank.
    cumulative_weight: Vec<u64>,
    customer_of_rank: Vec<u32>,
}

impl World {
    /// Builds the master data of `options` (single-threaded, from the world stream).
    pub(crate) fn build(options: &GenerateOptions) -> Self {
        let period = Month::new(options.period);
        let catalog = Catalog::new(period);
        let mut rng = rng::stream(options.seed, Stream::World);
        let width = customer_id_width(options.customers);
        let customers: Vec<Customer> = (0..options.customers)
            .map(|i| customer(i, width, period, &mut rng))
            .collect();
        let mut subscriptions = Vec::with_capacity(customers.len() * 3);
        let mut targets = Vec::with_capacity(customers.len() * 3);
        let mut target_ranges = Vec::with_capacity(customers.len());
        for (i, c) in customers.iter().enumerate() {
            let first = subscriptions.len();
            subscribe(i, c, &catalog, &mut rng, &mut subscriptions);
            let begin = targets.len();
            targets.extend(
                subscriptions[first..]
                    .iter()
                    .filter_map(|s| target(s, c, &catalog)),
            );
            let len = targets.len() - begin;
            debug_assert!(len > 0, "every customer uses a metered product");
            target_ranges.push((to_u32(begin), to_u32(len)));
        }
        let credit_memos = credit_memos(&customers, &mut rng);
        let before_window = customers
            .iter()
            .map(|c| period.previous().window(c.billing_day).micros())
            .collect();
        // Zipf-like volumes (weight 1/rank) over a random ranking of customers: with 1 000
        // customers the top 1 % produce about 40 % of the events, the top 10 % about 70 %.
        // Integer weights: no floating point anywhere near the data.
        let mut customer_of_rank: Vec<u32> = (0..to_u32(customers.len())).collect();
        customer_of_rank.shuffle(&mut rng);
        let mut total = 0u64;
        let cumulative_weight = (1..=customers.len() as u64)
            .map(|rank| {
                total += (1u64 << 40) / rank;
                total
            })
            .collect();
        Self {
            period,
            event_id_prefix: options.event_id_prefix.clone(),
            unknown_customer: format!("C{}", "9".repeat(width)),
            catalog,
            customers,
            subscriptions,
            credit_memos,
            targets,
            target_ranges,
            before_window,
            cumulative_weight,
            customer_of_rank,
        }
    }

    /// Draws a customer, weighted by its usage volume.
    pub(crate) fn draw_customer(&self, rng: &mut ChaCha8Rng) -> usize {
        let total = *self
            .cumulative_weight
            .last()
            .expect("at least one customer");
        let x = rng.random_range(0..total);
        let rank = self.cumulative_weight.partition_point(|&c| c <= x);
        self.customer_of_rank[rank] as usize
    }

    /// Where customer `c`'s in-window usage can fall.
    pub(crate) fn targets(&self, c: usize) -> &[Target] {
        let (begin, len) = self.target_ranges[c];
        &self.targets[begin as usize..(begin + len) as usize]
    }

    /// The month before customer `c`'s window (start, length in µs).
    pub(crate) fn before_window(&self, c: usize) -> (i64, u64) {
        self.before_window[c]
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).expect("counts are bounded by MAX_CUSTOMERS")
}

/// Picks from `(value, weight)` pairs.
fn weighted<T: Copy>(rng: &mut ChaCha8Rng, choices: &[(T, u32)]) -> T {
    let total: u32 = choices.iter().map(|&(_, w)| w).sum();
    let mut x = rng.random_range(0..total);
    for &(value, w) in choices {
        if x < w {
            return value;
        }
        x -= w;
    }
    unreachable!("x < total")
}

fn customer(i: usize, width: usize, period: Month, rng: &mut ChaCha8Rng) -> Customer {
    let (currency, billing_day, tax_region) = match COVERAGE.get(i) {
        Some(&fixed) => fixed,
        None => {
            let currency = weighted(
                rng,
                &[
                    (Currency::Usd, 60),
                    (Currency::Eur, 30),
                    (Currency::Jpy, 6),
                    (Currency::Kwd, 4),
                ],
            );
            let day = weighted(rng, &[(1, 80), (5, 7), (15, 7), (28, 6)]);
            (currency, day, weighted(rng, catalog::tax_regions(currency)))
        }
    };
    let first = NAME_FIRST[rng.random_range(0..NAME_FIRST.len())];
    let second = NAME_SECOND[rng.random_range(0..NAME_SECOND.len())];
    let suffix = legal_suffix(currency, rng.random_range(0..6));
    let email = (rng.random_range(0..10) != 0).then(|| {
        let mailbox = MAILBOXES[rng.random_range(0..MAILBOXES.len())];
        format!(
            "{mailbox}@{}-{}.example",
            first.to_ascii_lowercase(),
            second.to_ascii_lowercase()
        )
    });
    Customer {
        id: format!("C{:0width$}", i + 1),
        name: format!("{first} {second} {suffix}"),
        currency,
        billing_day,
        payment_terms_days: weighted(
            rng,
            &[(None, 20), (Some(15), 15), (Some(30), 45), (Some(45), 20)],
        ),
        tax_region,
        email,
        window: period.window(billing_day),
    }
}

/// How a subscription to a product lives around the billing window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    /// Started long before the window, still running.
    Running,
    /// Starts inside the window.
    StartsInside,
    /// Ends inside the window.
    EndsInside,
    /// Moves to the product's other plan inside the window (two subscriptions).
    SwitchesInside,
    /// Replaced a subscription to the product's other plan before the window.
    Replaced,
}

fn lifecycle(rng: &mut ChaCha8Rng, can_switch: bool) -> Lifecycle {
    let l = weighted(
        rng,
        &[
            (Lifecycle::Running, 79),
            (Lifecycle::StartsInside, 5),
            (Lifecycle::EndsInside, 5),
            (Lifecycle::SwitchesInside, 3),
            (Lifecycle::Replaced, 8),
        ],
    );
    match l {
        Lifecycle::SwitchesInside if !can_switch => Lifecycle::Running,
        l => l,
    }
}

/// A day strictly inside the window: `start + 1 ..= end - 1`.
fn day_inside(rng: &mut ChaCha8Rng, window: Window) -> NaiveDate {
    add_days(window.start, rng.random_range(1..window.days()))
}

/// Adds customer `c`'s subscriptions: one to three metered products, usually seats,
/// sometimes support. Subscriptions to one product never overlap.
fn subscribe(
    c: usize,
    customer: &Customer,
    catalog: &Catalog,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<Subscription>,
) {
    let window = customer.window;
    let currency = customer.currency;
    let how_many = weighted(rng, &[(1usize, 40), (2, 40), (3, 20)]);
    let mut products: Vec<usize> = Vec::with_capacity(how_many);
    while products.len() < how_many {
        let p = weighted(
            rng,
            &[
                (METERED[0], 40),
                (METERED[1], 25),
                (METERED[2], 20),
                (METERED[3], 15),
            ],
        );
        if !products.contains(&p) {
            products.push(p);
        }
    }
    let mut add = |plan_template: usize, start, end, quantity, rng: &mut ChaCha8Rng| {
        let discount_percent =
            (rng.random_range(0..100) < 8).then(|| [5, 10, 15][rng.random_range(0..3)]);
        let metered = PRODUCTS[catalog.plans[catalog.plan(plan_template, currency)].product]
            .metered
            .is_some();
        let min_commitment_micros = (metered && rng.random_range(0..100) < 5)
            .then(|| currency.fee([50, 100, 250, 500][rng.random_range(0..4)] * 1_000_000));
        out.push(Subscription {
            id: format!("S{:07}", out.len() + 1),
            customer: c,
            plan: catalog.plan(plan_template, currency),
            start,
            end,
            quantity,
            discount_percent,
            min_commitment_micros,
        });
    };
    let long_ago = |rng: &mut ChaCha8Rng| sub_days(window.start, rng.random_range(1..=730));
    for product in products {
        // The plan, and the product's other plan (the same one when it has a single
        // plan) that a customer switches from or replaced.
        let choices = plan_choices(product);
        let pick = rng.random_range(0..choices.len());
        let plan = choices[pick];
        let other = choices[(pick + 1) % choices.len()];
        match lifecycle(rng, choices.len() > 1) {
            Lifecycle::Running => {
                let start = long_ago(rng);
                add(plan, start, None, None, rng);
            }
            Lifecycle::StartsInside => {
                let start = day_inside(rng, window);
                add(plan, start, None, None, rng);
            }
            Lifecycle::EndsInside => {
                let start = long_ago(rng);
                let end = day_inside(rng, window);
                add(plan, start, Some(end), None, rng);
            }
            Lifecycle::SwitchesInside => {
                let start = long_ago(rng);
                let switch = day_inside(rng, window);
                add(other, start, Some(switch), None, rng);
                add(plan, switch, None, None, rng);
            }
            Lifecycle::Replaced => {
                let start = sub_days(window.start, rng.random_range(1..=365));
                let before = sub_days(start, rng.random_range(90..=400));
                add(other, before, Some(start), None, rng);
                add(plan, start, None, None, rng);
            }
        }
    }
    if rng.random_range(0..100) < 85 {
        // Seats 1..=50, mostly few.
        let seats = 1 + rng.random_range(0..50u32) * rng.random_range(0..50u32) / 49;
        let (start, end) = match weighted(rng, &[(0, 90), (1, 5), (2, 5)]) {
            1 => (day_inside(rng, window), None),
            2 => (long_ago(rng), Some(day_inside(rng, window))),
            _ => (long_ago(rng), None),
        };
        add(
            plan_choices(catalog::SEATS)[0],
            start,
            end,
            Some(seats),
            rng,
        );
    }
    if rng.random_range(0..100) < 20 {
        // Support is one unit; leave the quantity empty (it defaults to 1) half the time.
        let quantity = (rng.random_range(0..2) == 0).then_some(1);
        let start = long_ago(rng);
        add(
            plan_choices(catalog::SUPPORT)[0],
            start,
            None,
            quantity,
            rng,
        );
    }
}

/// The part of the window in which `s` is active, if it is metered and active in it.
fn target(s: &Subscription, customer: &Customer, catalog: &Catalog) -> Option<Target> {
    let product = catalog.plans[s.plan].product;
    PRODUCTS[product].metered?;
    let window = customer.window;
    let from = s.start.max(window.start);
    let to = s.end.map_or(window.end, |e| e.min(window.end));
    (from < to).then(|| {
        let (start_us, span_us) = Window {
            start: from,
            end: to,
        }
        .micros();
        Target {
            product,
            start_us,
            span_us,
        }
    })
}

/// Credit memos for about 4 % of customers (always the first): mostly in the customer's
/// currency and inside its window; some in a foreign currency or issued the month
/// before, which a bill run leaves open.
fn credit_memos(customers: &[Customer], rng: &mut ChaCha8Rng) -> Vec<CreditMemo> {
    let mut memos = Vec::new();
    for (i, c) in customers.iter().enumerate() {
        if i != 0 && rng.random_range(0..100) >= 4 {
            continue;
        }
        let kind = weighted(rng, &[(0, 80), (1, 10), (2, 10)]);
        let currency = match (kind, c.currency) {
            (1, Currency::Usd) => Currency::Eur,
            (1, _) => Currency::Usd,
            _ => c.currency,
        };
        let issued_on = if kind == 2 {
            sub_days(c.window.start, rng.random_range(1..=28))
        } else {
            add_days(c.window.start, rng.random_range(0..c.window.days()))
        };
        let usd = [25, 50, 100, 200][rng.random_range(0..4)] * 1_000_000;
        memos.push(CreditMemo {
            id: format!("CM-{:06}", memos.len() + 1),
            customer: i,
            currency,
            amount_micros: currency.fee(usd),
            issued_on,
            reason: MEMO_REASONS[rng.random_range(0..MEMO_REASONS.len())],
        });
    }
    memos
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(customers: usize) -> World {
        World::build(&GenerateOptions {
            customers,
            ..GenerateOptions::default()
        })
    }

    #[test]
    fn subscriptions_to_one_product_never_overlap() {
        let w = world(2_000);
        let mut by_key: std::collections::BTreeMap<(usize, usize), Vec<&Subscription>> =
            Default::default();
        for s in &w.subscriptions {
            by_key
                .entry((s.customer, w.catalog.plans[s.plan].product))
                .or_default()
                .push(s);
        }
        for subs in by_key.values_mut() {
            subs.sort_by_key(|s| s.start);
            for pair in subs.windows(2) {
                assert!(pair[0].end.is_some_and(|e| e <= pair[1].start), "{pair:?}");
            }
        }
        for s in &w.subscriptions {
            assert_eq!(
                w.catalog.plans[s.plan].currency,
                w.customers[s.customer].currency
            );
            assert!(s.end.is_none_or(|e| e > s.start));
        }
        let ids: std::collections::BTreeSet<_> = w.subscriptions.iter().map(|s| &s.id).collect();
        assert_eq!(ids.len(), w.subscriptions.len());
    }

    #[test]
    fn every_customer_has_usage_targets_inside_its_window() {
        let w = world(500);
        for (c, customer) in w.customers.iter().enumerate() {
            let targets = w.targets(c);
            assert!(!targets.is_empty());
            let (start, span) = customer.window.micros();
            for t in targets {
                assert!(t.start_us >= start && t.span_us > 0);
                assert!(t.start_us + t.span_us as i64 <= start + span as i64);
                assert!(PRODUCTS[t.product].metered.is_some());
            }
        }
        let september = crate::calendar::micros(crate::calendar::ymd(2026, 9, 1));
        assert_eq!(w.before_window(0).0, september);
    }

    #[test]
    fn customer_ids_widen_above_a_million_and_never_meet_the_unknown_id() {
        // (customers, width): six digits while `C999999` is free, then as wide as the
        // unknown id customers + 1 needs.
        for (customers, width) in [
            (1, 6),
            (999_998, 6),
            (999_999, 7),
            (9_999_998, 7),
            (9_999_999, 8),
            (99_999_998, 8),
        ] {
            assert_eq!(customer_id_width(customers), width, "{customers}");
            let last = format!("C{:0width$}", customers);
            let unknown = format!("C{}", "9".repeat(width));
            assert!(last < unknown, "{last} {unknown}");
        }
        let w = world(3);
        assert_eq!(w.customers[2].id, "C000003");
        assert_eq!(w.unknown_customer, "C999999");
    }

    #[test]
    fn volumes_are_skewed() {
        let w = world(1_000);
        let mut rng = rng::stream(1, Stream::UsageFile(0));
        let mut counts = vec![0u32; 1_000];
        for _ in 0..100_000 {
            counts[w.draw_customer(&mut rng)] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top_ten: u32 = counts[..10].iter().sum();
        assert!(top_ten > 30_000, "top 1 % drew {top_ten}");
    }
}
