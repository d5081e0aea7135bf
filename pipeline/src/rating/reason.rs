//! Why an event in the period was not priced.

use std::hash::Hash;

/// Why an event in the period was not priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnratedReason {
    NoActiveSubscription,
    AmbiguousSubscription,
    NoPlanVersion,
    /// The plan version in force was rejected (a bad row, an overlap): the version
    /// before it never prices its days.
    RefusedPlanVersion,
    RecurringPlan,
    /// With the books: the event falls in a period already posted and was not billed
    /// there (late usage). It marks late rows between their sorting and their billing
    /// as corrections, which gives them their own reason when they cannot be priced;
    /// it is not written to `unrated`.
    LateForPostedPeriod,
}

impl UnratedReason {
    /// The code written to `unrated.code`.
    pub fn code(self) -> &'static str {
        match self {
            UnratedReason::NoActiveSubscription => "no_active_subscription",
            UnratedReason::AmbiguousSubscription => "ambiguous_subscription",
            UnratedReason::NoPlanVersion => "no_plan_version",
            UnratedReason::RefusedPlanVersion => "refused_plan_version",
            UnratedReason::RecurringPlan => "recurring_plan",
            UnratedReason::LateForPostedPeriod => "late_for_posted_period",
        }
    }

    pub(super) fn from_code(code: &str) -> Option<Self> {
        [
            UnratedReason::NoActiveSubscription,
            UnratedReason::AmbiguousSubscription,
            UnratedReason::NoPlanVersion,
            UnratedReason::RefusedPlanVersion,
            UnratedReason::RecurringPlan,
            UnratedReason::LateForPostedPeriod,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// A sentence for `unrated.reason`.
    pub fn describe(self, customer_id: &str, product_id: &str) -> String {
        match self {
            UnratedReason::NoActiveSubscription => format!(
                "no subscription of customer `{customer_id}` to a plan for product `{product_id}` is active at this time"
            ),
            UnratedReason::AmbiguousSubscription => format!(
                "customer `{customer_id}` has two or more subscriptions for product `{product_id}` active at this time"
            ),
            UnratedReason::NoPlanVersion => format!(
                "the subscription's plan for product `{product_id}` has no version in force at this time"
            ),
            UnratedReason::RefusedPlanVersion => format!(
                "the version of the subscription's plan for product `{product_id}` in force at this time was rejected (see rejects, table price_plans); the version before it does not price its usage"
            ),
            UnratedReason::RecurringPlan => format!(
                "the subscription's plan for product `{product_id}` is a flat recurring plan; it does not price usage"
            ),
            UnratedReason::LateForPostedPeriod => format!(
                "late usage of customer `{customer_id}`: the event falls in a period the books have posted and was not billed there; it is billed as a correction of that period"
            ),
        }
    }
}
