//! Input templates: the tables upstream systems export, column by column.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::{quantity_type, timestamp_type};

/// An input table of the data contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Customers,
    Products,
    PricePlans,
    Subscriptions,
    Usage,
    TaxRates,
    CreditMemos,
    Orders,
    Ssp,
    RevPolicies,
    CarveRules,
    Conditions,
    Modifications,
    Payments,
    GlAccounts,
    Contacts,
    Salespeople,
}

impl Table {
    /// The input tables of billing, in the order a bill run loads them (master data
    /// first). [`Table::ACCOUNTING`] has the rest; [`Table::every`] gives both.
    pub const ALL: [Table; 7] = [
        Table::Customers,
        Table::Products,
        Table::PricePlans,
        Table::Subscriptions,
        Table::TaxRates,
        Table::CreditMemos,
        Table::Usage,
    ];

    /// The table's name, which is also its folder in a dataset.
    pub fn name(self) -> &'static str {
        match self {
            Table::Customers => "customers",
            Table::Products => "products",
            Table::PricePlans => "price_plans",
            Table::Subscriptions => "subscriptions",
            Table::Usage => "usage",
            Table::TaxRates => "tax_rates",
            Table::CreditMemos => "credit_memos",
            Table::Orders => "orders",
            Table::Ssp => "ssp",
            Table::RevPolicies => "rev_policies",
            Table::CarveRules => "carve_rules",
            Table::Conditions => "conditions",
            Table::Modifications => "modifications",
            Table::Payments => "payments",
            Table::GlAccounts => "gl_accounts",
            Table::Contacts => "contacts",
            Table::Salespeople => "salespeople",
        }
    }

    /// The tables of revenue recognition and the ledger (contracts from orders, their
    /// SSPs, policies, carves, conditions and modifications, and payments). All optional:
    /// a dataset without them bills as before.
    pub const ACCOUNTING: [Table; 8] = [
        Table::Orders,
        Table::Ssp,
        Table::RevPolicies,
        Table::CarveRules,
        Table::Conditions,
        Table::Modifications,
        Table::Payments,
        Table::GlAccounts,
    ];

    /// CRM reference data: who to talk to at a customer, and who sold to it. Optional;
    /// validated and kept in the dataset, not used for money.
    pub const CRM: [Table; 2] = [Table::Contacts, Table::Salespeople];

    /// Every table of the contract: [`Table::ALL`], [`Table::ACCOUNTING`], [`Table::CRM`].
    pub fn every() -> impl Iterator<Item = Table> {
        Table::ALL
            .into_iter()
            .chain(Table::ACCOUNTING)
            .chain(Table::CRM)
    }

    /// What the table holds, in a sentence, for generated docs.
    pub fn description(self) -> &'static str {
        match self {
            Table::Customers => {
                "Who is billed: one row per customer, with its billing day and tax region."
            }
            Table::Products => {
                "What is sold: usage, recurring and one-time products, with their revenue account and SSP."
            }
            Table::PricePlans => {
                "How products are priced: one row per tier of each effective-dated plan version."
            }
            Table::Subscriptions => {
                "Which customer is on which plan, from when to when, with seats, discount and commitment."
            }
            Table::Usage => {
                "Metered events: one row per event, rated against the subscription active at its time."
            }
            Table::TaxRates => "Tax rate per region, effective-dated.",
            Table::CreditMemos => {
                "Credits granted to customers, applied to their invoices oldest first."
            }
            Table::Orders => {
                "Contracts booked in CPQ: one row per order line (a performance obligation)."
            }
            Table::Ssp => "Standalone selling price per product and currency, effective-dated.",
            Table::RevPolicies => {
                "How each product's revenue is recognised, and the accounts it is booked to."
            }
            Table::CarveRules => {
                "Moves a share of one obligation's revenue to another obligation or account."
            }
            Table::Conditions => {
                "Conditions (such as acceptance) that hold an order's revenue until satisfied."
            }
            Table::Modifications => {
                "Changes to an order line part-way through its service: extensions, cancellations."
            }
            Table::Payments => "Payments received from customers.",
            Table::GlAccounts => "The chart of accounts: GL numbers with names and types.",
            Table::Contacts => "People at a customer: billing contacts who receive invoices.",
            Table::Salespeople => "Who sells: account owners, for reporting.",
        }
    }

    /// Whether rows are appended on import (transactions) or upserted by key (master data).
    pub fn is_transactional(self) -> bool {
        matches!(
            self,
            Table::Usage
                | Table::Orders
                | Table::Payments
                | Table::CreditMemos
                | Table::Modifications
        )
    }

    /// The columns that name the version a row belongs to, for tables of effective-dated
    /// versions (a plan's rows with one effective_from, a region's rate): a rejected row
    /// of such a table refuses the version it names, so that the version before is never
    /// used in its place. Empty for other tables.
    pub fn version_key(self) -> &'static [&'static str] {
        match self {
            Table::PricePlans => &["plan_id", "effective_from"],
            Table::TaxRates => &["tax_region", "effective_from"],
            _ => &[],
        }
    }

    /// The columns that identify a row of master data, for upserts on import; empty for
    /// transactional tables.
    pub fn key_columns(self) -> &'static [&'static str] {
        match self {
            Table::Customers => &["customer_id"],
            Table::Products => &["product_id"],
            // A plan version is replaced as a whole: its tiers are its rows.
            Table::PricePlans => &["plan_id", "effective_from"],
            Table::Subscriptions => &["subscription_id"],
            Table::TaxRates => &["tax_region", "effective_from"],
            Table::Ssp => &["product_id", "currency", "effective_from"],
            Table::RevPolicies => &["product_id"],
            Table::CarveRules => &["rule_id"],
            Table::Conditions => &["condition_id"],
            Table::GlAccounts => &["gl_account"],
            Table::Contacts => &["contact_id"],
            Table::Salespeople => &["salesperson_id"],
            Table::Usage
            | Table::Orders
            | Table::Payments
            | Table::CreditMemos
            | Table::Modifications => &[],
        }
    }

    /// Looks a table up by its name.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::every().find(|t| t.name() == name)
    }

    /// The template's columns, in published order.
    pub fn columns(self) -> &'static [ColumnSpec] {
        use ColumnKind::*;
        match self {
            Table::Customers => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("customer_id", Id),
                    ColumnSpec::required("name", Text),
                    ColumnSpec::required("currency", Currency),
                    ColumnSpec::required("billing_day", Integer { min: 1, max: 28 }),
                    ColumnSpec::optional("payment_terms_days", Integer { min: 0, max: 3650 }),
                    ColumnSpec::optional("tax_region", Id),
                    ColumnSpec::optional("email", Text),
                ];
                COLUMNS
            }
            Table::Products => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("product_id", Id),
                    ColumnSpec::required("name", Text),
                    ColumnSpec::required(
                        "kind",
                        Enum {
                            values: &["usage", "recurring", "one_time"],
                        },
                    ),
                    ColumnSpec::optional("unit", Text),
                    ColumnSpec::optional("revenue_account", Text),
                    ColumnSpec::optional(
                        "ssp",
                        Decimal {
                            sign: Sign::NonNegative,
                        },
                    ),
                ];
                COLUMNS
            }
            Table::PricePlans => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("plan_id", Id),
                    ColumnSpec::required("product_id", Id),
                    ColumnSpec::required("currency", Currency),
                    ColumnSpec::required(
                        "model",
                        Enum {
                            values: &["per_unit", "graduated", "volume", "package", "flat"],
                        },
                    ),
                    ColumnSpec::required(
                        "tier_start",
                        Decimal {
                            sign: Sign::NonNegative,
                        },
                    ),
                    ColumnSpec::required(
                        "unit_price",
                        Decimal {
                            sign: Sign::NonNegative,
                        },
                    ),
                    ColumnSpec::optional(
                        "flat_fee",
                        Decimal {
                            sign: Sign::NonNegative,
                        },
                    ),
                    ColumnSpec::optional(
                        "package_size",
                        Decimal {
                            sign: Sign::Positive,
                        },
                    ),
                    ColumnSpec::required("effective_from", Date),
                    ColumnSpec::optional("effective_to", Date),
                ];
                COLUMNS
            }
            Table::Subscriptions => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("subscription_id", Id),
                    ColumnSpec::required("customer_id", Id),
                    ColumnSpec::required("plan_id", Id),
                    ColumnSpec::required("start_date", Date),
                    ColumnSpec::optional("end_date", Date),
                    ColumnSpec::optional(
                        "quantity",
                        Decimal {
                            sign: Sign::Positive,
                        },
                    ),
                    ColumnSpec::optional(
                        "discount_percent",
                        Decimal {
                            sign: Sign::Percent,
                        },
                    ),
                    ColumnSpec::optional(
                        "min_commitment",
                        Decimal {
                            sign: Sign::NonNegative,
                        },
                    ),
                ];
                COLUMNS
            }
            Table::Usage => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("event_id", Id),
                    ColumnSpec::required("customer_id", Id),
                    ColumnSpec::required("product_id", Id),
                    ColumnSpec::required("ts", Timestamp),
                    ColumnSpec::required(
                        "quantity",
                        Decimal {
                            sign: Sign::NonNegative,
                        },
                    ),
                ];
                COLUMNS
            }
            Table::TaxRates => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("tax_region", Id),
                    ColumnSpec::required(
                        "rate",
                        Decimal {
                            sign: Sign::Fraction,
                        },
                    ),
                    ColumnSpec::required("effective_from", Date),
                ];
                COLUMNS
            }
            Table::CreditMemos => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("credit_memo_id", Id),
                    ColumnSpec::required("customer_id", Id),
                    ColumnSpec::required("currency", Currency),
                    ColumnSpec::required(
                        "amount",
                        Decimal {
                            sign: Sign::Positive,
                        },
                    ),
                    ColumnSpec::required("issued_on", Date),
                    ColumnSpec::optional("reason", Text),
                ];
                COLUMNS
            }
            Table::Orders => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("order_id", Id),
                    ColumnSpec::required("line_id", Id),
                    ColumnSpec::required("contract_id", Id),
                    ColumnSpec::required("customer_id", Id),
                    ColumnSpec::required("product_id", Id),
                    ColumnSpec::required("currency", Currency),
                    ColumnSpec::required(
                        "quantity",
                        Decimal {
                            sign: Sign::Positive,
                        },
                    ),
                    ColumnSpec::required(
                        "transaction_price",
                        Decimal {
                            sign: Sign::NonNegative,
                        },
                    ),
                    ColumnSpec::required("service_start", Date),
                    ColumnSpec::optional("service_end", Date),
                    ColumnSpec::optional("order_date", Date),
                ];
                COLUMNS
            }
            Table::Ssp => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("product_id", Id),
                    ColumnSpec::required("currency", Currency),
                    ColumnSpec::required(
                        "ssp",
                        Decimal {
                            sign: Sign::NonNegative,
                        },
                    ),
                    ColumnSpec::required("effective_from", Date),
                ];
                COLUMNS
            }
            Table::RevPolicies => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("product_id", Id),
                    ColumnSpec::required(
                        "method",
                        Enum {
                            values: &["ratable", "point_in_time", "as_consumed"],
                        },
                    ),
                    ColumnSpec::optional("deferral_account", Text),
                    ColumnSpec::optional("revenue_account", Text),
                ];
                COLUMNS
            }
            Table::CarveRules => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("rule_id", Id),
                    ColumnSpec::optional("contract_id", Id),
                    ColumnSpec::required("from_product_id", Id),
                    ColumnSpec::optional("to_product_id", Id),
                    ColumnSpec::optional("to_account", Text),
                    ColumnSpec::optional(
                        "percent",
                        Decimal {
                            sign: Sign::Percent,
                        },
                    ),
                    ColumnSpec::optional(
                        "amount",
                        Decimal {
                            sign: Sign::NonNegative,
                        },
                    ),
                    ColumnSpec::optional("currency", Currency),
                ];
                COLUMNS
            }
            Table::Conditions => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("condition_id", Id),
                    ColumnSpec::required("order_id", Id),
                    ColumnSpec::optional("line_id", Id),
                    ColumnSpec::required("description", Text),
                    ColumnSpec::optional("satisfied_on", Date),
                ];
                COLUMNS
            }
            Table::Modifications => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("modification_id", Id),
                    ColumnSpec::required("order_id", Id),
                    ColumnSpec::required("line_id", Id),
                    ColumnSpec::required("effective_date", Date),
                    ColumnSpec::required("new_service_end", Date),
                    ColumnSpec::optional("price_change", Decimal { sign: Sign::Any }),
                    ColumnSpec::optional("reason", Text),
                ];
                COLUMNS
            }
            Table::Payments => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("payment_id", Id),
                    ColumnSpec::required("customer_id", Id),
                    ColumnSpec::required("currency", Currency),
                    ColumnSpec::required(
                        "amount",
                        Decimal {
                            sign: Sign::Positive,
                        },
                    ),
                    ColumnSpec::required("paid_on", Date),
                    ColumnSpec::optional("invoice_id", Id),
                    ColumnSpec::optional("method", Text),
                ];
                COLUMNS
            }
            Table::GlAccounts => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("gl_account", Id),
                    ColumnSpec::required("name", Text),
                    ColumnSpec::required(
                        "type",
                        Enum {
                            values: &["asset", "liability", "equity", "revenue", "expense"],
                        },
                    ),
                    ColumnSpec::optional("billrun_account", Text),
                    ColumnSpec::optional("erp_tax_rate", Text),
                ];
                COLUMNS
            }
            Table::Contacts => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("contact_id", Id),
                    ColumnSpec::required("customer_id", Id),
                    ColumnSpec::required("name", Text),
                    ColumnSpec::required("email", Text),
                    ColumnSpec::optional(
                        "role",
                        Enum {
                            values: &["billing", "technical", "executive", "other"],
                        },
                    ),
                    ColumnSpec::optional("phone", Text),
                ];
                COLUMNS
            }
            Table::Salespeople => {
                const COLUMNS: &[ColumnSpec] = &[
                    ColumnSpec::required("salesperson_id", Id),
                    ColumnSpec::required("name", Text),
                    ColumnSpec::required("email", Text),
                    ColumnSpec::optional("region", Text),
                ];
                COLUMNS
            }
        }
    }

    /// The canonical Arrow schema of the table once validated: the template's columns with
    /// their billrun types, followed by the provenance columns [`FILE_INDEX_COLUMN`] and
    /// [`ROW_NUMBER_COLUMN`] that let later stages name the file and row of any record.
    pub fn schema(self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .columns()
            .iter()
            .map(|c| Field::new(c.name, c.kind.data_type(), !c.required))
            .collect();
        fields.push(Field::new(FILE_INDEX_COLUMN, DataType::UInt32, false));
        fields.push(Field::new(ROW_NUMBER_COLUMN, DataType::UInt64, false));
        Arc::new(Schema::new(fields))
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Provenance column: index of the source file in the run's list of inputs.
pub const FILE_INDEX_COLUMN: &str = "_file_index";
/// Provenance column: 1-based data row within the source file (header not counted).
pub const ROW_NUMBER_COLUMN: &str = "_row_number";

/// A column of an input template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub kind: ColumnKind,
    /// Required columns must be present in every file and non-empty in every row.
    pub required: bool,
}

impl ColumnSpec {
    const fn required(name: &'static str, kind: ColumnKind) -> Self {
        Self {
            name,
            kind,
            required: true,
        }
    }

    const fn optional(name: &'static str, kind: ColumnKind) -> Self {
        Self {
            name,
            kind,
            required: false,
        }
    }
}

/// Which decimals a column accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// `>= 0`
    NonNegative,
    /// `> 0`
    Positive,
    /// `0..=100`
    Percent,
    /// `0..=1` (a tax rate of 0.2 is 20 %)
    Fraction,
    /// Any sign (a price change may be a refund).
    Any,
}

/// The logical type of a template column and the rule its cells must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// An identifier: non-empty text, surrounding white space not allowed.
    Id,
    /// Free text.
    Text,
    /// An upper-case ISO 4217 code.
    Currency,
    /// One of a closed set of words.
    Enum { values: &'static [&'static str] },
    /// A whole number in `min..=max`.
    Integer { min: i64, max: i64 },
    /// An exact decimal with at most [`crate::QUANTITY_SCALE`] fractional digits.
    Decimal { sign: Sign },
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339, converted to UTC.
    Timestamp,
}

impl ColumnKind {
    /// The canonical Arrow type of a validated column of this kind.
    pub fn data_type(self) -> DataType {
        match self {
            ColumnKind::Id | ColumnKind::Text | ColumnKind::Currency | ColumnKind::Enum { .. } => {
                DataType::Utf8
            }
            ColumnKind::Integer { .. } => DataType::Int64,
            ColumnKind::Decimal { .. } => quantity_type(),
            ColumnKind::Date => DataType::Date32,
            ColumnKind::Timestamp => timestamp_type(),
        }
    }

    /// A short description for generated template docs.
    pub fn describe(self) -> String {
        match self {
            ColumnKind::Id => "identifier (text)".into(),
            ColumnKind::Text => "text".into(),
            ColumnKind::Currency => "ISO 4217 currency code".into(),
            ColumnKind::Enum { values } => format!("one of {}", values.join(", ")),
            ColumnKind::Integer { min, max } => format!("whole number {min}..{max}"),
            ColumnKind::Decimal { sign } => match sign {
                Sign::NonNegative => "decimal >= 0".into(),
                Sign::Positive => "decimal > 0".into(),
                Sign::Percent => "decimal 0..100".into(),
                Sign::Fraction => "decimal fraction 0..1".into(),
                Sign::Any => "decimal, may be negative".into(),
            },
            ColumnKind::Date => "date YYYY-MM-DD".into(),
            ColumnKind::Timestamp => "timestamp RFC 3339, UTC".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_round_trips_its_name() {
        for t in Table::every() {
            assert_eq!(Table::from_name(t.name()), Some(t));
        }
        assert_eq!(Table::every().count(), 17);
        assert_eq!(Table::from_name("order"), None);
    }

    #[test]
    fn schema_appends_provenance_columns() {
        let s = Table::Usage.schema();
        let names: Vec<_> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "event_id",
                "customer_id",
                "product_id",
                "ts",
                "quantity",
                FILE_INDEX_COLUMN,
                ROW_NUMBER_COLUMN
            ]
        );
        assert!(!s.field(0).is_nullable());
    }
}
