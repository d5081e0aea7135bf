//! The exported journal in the tools accountants use, each run for real: hledger
//! (`check --strict`, `balancesheet`, `incomestatement`), ledger (`--pedantic`),
//! beancount (`bean-check` and its loader) and the ERP journal layouts (NetSuite,
//! QuickBooks Online, Xero) tied out against the journal table by an independent
//! mapping. Both bundled samples: the billing sample (no chart of accounts) and the
//! revenue sample (a chart that maps every account).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;

use crate::common::{repo, tool};

/// A CSV file's rows, each by its header's column names.
fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(str::to_string))
                .collect()
        })
        .collect()
}

fn outputs() -> [PathBuf; 2] {
    [crate::e2e::sample_out(), crate::revenue::revenue_out()]
}

fn path(out: &Path, file: &str) -> String {
    out.join(file).to_string_lossy().into_owned()
}

/// The accounts of the journal table, and their net balance per currency (debit −
/// credit), read from `journal.csv`.
fn journal_balances(out: &Path) -> BTreeMap<String, BTreeMap<String, Decimal>> {
    let rows = read_csv(&out.join("journal.csv"));
    let mut balances: BTreeMap<String, BTreeMap<String, Decimal>> = BTreeMap::new();
    for r in &rows {
        let net = r["debit"].parse::<Decimal>().unwrap() - r["credit"].parse::<Decimal>().unwrap();
        *balances
            .entry(r["account"].clone())
            .or_default()
            .entry(r["currency"].clone())
            .or_default() += net;
    }
    balances
}

/// The sample's receivable is its invoices' totals (no payments), from the hand-checked
/// `data-samples/sample/expected/invoices.csv`.
const SAMPLE_RECEIVABLE: [&str; 4] = ["132.40 EUR", "4978 JPY", "2.500 KWD", "933.18 USD"];

#[test]
fn ledger_pedantic_accepts_the_journal_and_agrees_on_the_receivable() {
    for out in outputs() {
        let journal = path(&out, "journal.ledger");
        let Some(_) = tool("ledger", &["--pedantic", "-f", &journal, "balance"]) else {
            return;
        };
        let text = tool(
            "ledger",
            &[
                "--pedantic",
                "-f",
                &journal,
                "balance",
                "--flat",
                "^assets:receivable$",
            ],
        )
        .unwrap();
        let expected = journal_balances(&out)["assets:receivable"].clone();
        for (currency, amount) in expected.into_iter().filter(|(_, a)| !a.is_zero()) {
            let minor = if currency == "JPY" {
                0
            } else if currency == "KWD" {
                3
            } else {
                2
            };
            let shown = format!("{:.minor$} {currency}", amount);
            assert!(text.contains(&shown), "ledger lacks {shown}:\n{text}");
        }
    }
    let sample = tool(
        "ledger",
        &[
            "--pedantic",
            "-f",
            &path(&crate::e2e::sample_out(), "journal.ledger"),
            "balance",
            "^assets:receivable$",
        ],
    )
    .unwrap();
    for amount in SAMPLE_RECEIVABLE {
        assert!(sample.contains(amount), "ledger lacks {amount}:\n{sample}");
    }
}

/// `balancesheet` and `incomestatement` together show every account with a balance:
/// none is left out for want of a type.
#[test]
fn hledger_balancesheet_and_incomestatement_leave_no_account_out() {
    for out in outputs() {
        let journal = path(&out, "journal.ledger");
        let Some(_) = tool("hledger", &["-f", &journal, "check", "--strict"]) else {
            return;
        };
        let mut shown = BTreeSet::new();
        for report in ["balancesheetequity", "incomestatement"] {
            let text = tool("hledger", &["-f", &journal, report, "--flat", "-O", "csv"]).unwrap();
            for line in text.lines() {
                let name = line.split(',').next().unwrap_or("").trim_matches('"');
                if name.contains(':') {
                    shown.insert(name.to_string());
                }
            }
        }
        let with_balance: BTreeSet<String> = journal_balances(&out)
            .into_iter()
            .filter(|(_, by_currency)| by_currency.values().any(|v| !v.is_zero()))
            .map(|(account, _)| account)
            .collect();
        assert_eq!(
            with_balance.difference(&shown).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "accounts missing from balancesheetequity and incomestatement in {}",
            out.display()
        );
    }
}

/// `bean-check` accepts `journal.beancount`, and beancount's own balances equal the
/// journal table's, account by account, once billrun's names are mapped.
#[test]
fn bean_check_accepts_the_beancount_journal_and_its_balances_match() {
    for out in outputs() {
        let file = path(&out, "journal.beancount");
        let Some(_) = tool("bean-check", &[&file]) else {
            return;
        };
        // beancount's loader, not billrun, sums the postings per account.
        let script = r#"
import sys
from collections import defaultdict
from beancount import loader
from beancount.core import data
entries, errors, _ = loader.load_file(sys.argv[1])
assert not errors, errors
names = {e.account: e.meta["billrun_account"] for e in entries if isinstance(e, data.Open)}
totals = defaultdict(lambda: defaultdict(int))
for e in entries:
    if isinstance(e, data.Transaction):
        for p in e.postings:
            totals[names[p.account]][p.units.currency] += p.units.number
for account in sorted(totals):
    for currency in sorted(totals[account]):
        print(f"{account}\t{currency}\t{totals[account][currency]}")
"#;
        let text = tool("python3", &["-c", script, &file]).unwrap();
        let mut expected = Vec::new();
        for (account, by_currency) in journal_balances(&out) {
            for (currency, amount) in by_currency {
                expected.push(format!("{account}\t{currency}\t{}", amount.normalize()));
            }
        }
        let got: Vec<String> = text
            .lines()
            .map(|l| {
                let mut f = l.split('\t');
                let (a, c, n) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
                format!("{a}\t{c}\t{}", n.parse::<Decimal>().unwrap().normalize())
            })
            .collect();
        assert_eq!(got, expected, "beancount's balances in {}", out.display());
    }
}

/// The chart of the revenue sample, independently of billrun: billrun account → GL code
/// (a `billrun_account` mapping, else the account's last component when it is a GL
/// account), and GL code → name.
fn revenue_chart() -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let rows = read_csv(&repo(
        "data-samples/revenue/input/gl_accounts/gl_accounts.csv",
    ));
    let names: BTreeMap<String, String> = rows
        .iter()
        .map(|r| (r["gl_account"].clone(), r["name"].clone()))
        .collect();
    let mapped = rows
        .iter()
        .filter(|r| !r["billrun_account"].is_empty())
        .map(|r| (r["billrun_account"].clone(), r["gl_account"].clone()))
        .collect();
    (mapped, names)
}

fn gl_code(account: &str, mapped: &BTreeMap<String, String>) -> String {
    mapped
        .get(account)
        .cloned()
        .unwrap_or_else(|| account.rsplit(':').next().unwrap().to_string())
}

/// A journal amount (`720.0000`) at the currency's minor unit, blank for zero.
fn erp_amount(text: &str, currency: &str) -> String {
    let amount: Decimal = text.parse().unwrap();
    let minor = match currency {
        "JPY" => 0,
        "KWD" => 3,
        _ => 2,
    };
    if amount.is_zero() {
        String::new()
    } else {
        format!("{amount:.minor$}")
    }
}

/// `mm/dd/yyyy` (or `dd/mm/yyyy`) of a journal date `yyyy-mm-dd`.
fn us_date(iso: &str) -> String {
    let p: Vec<&str> = iso.split('-').collect();
    format!("{}/{}/{}", p[1], p[2], p[0])
}

fn uk_date(iso: &str) -> String {
    let p: Vec<&str> = iso.split('-').collect();
    format!("{}/{}/{}", p[2], p[1], p[0])
}

#[test]
fn the_erp_layouts_carry_every_posting_with_its_gl_code() {
    let out = crate::revenue::revenue_out();
    let (mapped, names) = revenue_chart();
    let journal = read_csv(&out.join("journal.csv"));
    // NetSuite: every posting, in journal order, every currency in one file.
    let netsuite = read_csv(&out.join("erp/netsuite-journal.csv"));
    assert_eq!(netsuite.len(), journal.len());
    for (n, j) in netsuite.iter().zip(&journal) {
        let code = gl_code(&j["account"], &mapped);
        assert!(names.contains_key(&code), "{code} is not in the chart");
        assert_eq!(n["External ID"], j["entry_id"]);
        assert_eq!(n["Date"], us_date(&j["date"]));
        assert_eq!(n["Currency"], j["currency"]);
        assert_eq!(n["Account"], code);
        assert_eq!(n["Debit"], erp_amount(&j["debit"], &j["currency"]));
        assert_eq!(n["Credit"], erp_amount(&j["credit"], &j["currency"]));
        assert_eq!(n["Memo"], j["memo"]);
    }
    let currencies: BTreeSet<&str> = journal.iter().map(|j| j["currency"].as_str()).collect();
    assert_eq!(currencies, BTreeSet::from(["EUR", "USD"]));
    for currency in currencies {
        let of: Vec<_> = journal
            .iter()
            .filter(|j| j["currency"] == currency)
            .collect();
        // QuickBooks Online: account names, one journal number per entry.
        let qbo = read_csv(&out.join(format!("erp/quickbooks-journal-{currency}.csv")));
        assert_eq!(qbo.len(), of.len());
        let mut numbers: BTreeMap<&str, &str> = BTreeMap::new();
        for (q, j) in qbo.iter().zip(&of) {
            assert_eq!(q["Account Name"], names[&gl_code(&j["account"], &mapped)]);
            assert_eq!(q["Journal Date"], us_date(&j["date"]));
            assert_eq!(q["Debits"], erp_amount(&j["debit"], currency));
            assert_eq!(q["Credits"], erp_amount(&j["credit"], currency));
            assert!(q["Description"].starts_with(&format!("{}: ", j["entry_id"])));
            let number = numbers.entry(&j["entry_id"]).or_insert(&q["Journal No."]);
            assert_eq!(*number, q["Journal No."]);
        }
        assert_eq!(
            numbers.values().collect::<BTreeSet<_>>().len(),
            numbers.len(),
            "each entry its own journal number"
        );
        // Xero: one signed amount per line, summing to zero per journal.
        let xero = read_csv(&out.join(format!("erp/xero-journal-{currency}-001.csv")));
        assert_eq!(xero.len(), of.len());
        let mut per_journal: BTreeMap<(String, String), Decimal> = BTreeMap::new();
        for (x, j) in xero.iter().zip(&of) {
            let signed =
                j["debit"].parse::<Decimal>().unwrap() - j["credit"].parse::<Decimal>().unwrap();
            assert_eq!(x["*AccountCode"], gl_code(&j["account"], &mapped));
            assert_eq!(x["*Date"], uk_date(&j["date"]));
            assert_eq!(x["*TaxRate"], "Tax Exempt");
            assert_eq!(x["*Amount"].parse::<Decimal>().unwrap(), signed);
            *per_journal
                .entry((x["*Narration"].clone(), x["*Date"].clone()))
                .or_default() += signed;
        }
        assert!(
            per_journal.values().all(Decimal::is_zero),
            "{per_journal:?}"
        );
    }
}

#[test]
fn without_a_chart_no_erp_layout_is_written() {
    assert!(!crate::e2e::sample_out().join("erp").exists());
}
