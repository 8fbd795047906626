//! The plan catalogue: what each plan costs and allows. Product definition, so it is code, reviewed and
//! versioned with the binary, not rows an operator could drift.

use contracts::plan::{Feature, Limited, PlanLimits, PlanSummary};
use serde::Serialize;

/// One plan of the catalogue.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Plan {
    pub code: &'static str,
    pub name: &'static str,
    /// Monthly price in yen, tax included.
    pub price_jpy_per_month: u64,
    pub agents: Option<u64>,
    pub inboxes: Option<u64>,
    pub conversations_per_month: Option<u64>,
    pub features: &'static [Feature],
}

const BASIC: &[Feature] = &[Feature::ApiChannel, Feature::WebWidget];
const WITH_CANNED_RESPONSES: &[Feature] = &[Feature::ApiChannel, Feature::WebWidget, Feature::CannedResponses];

/// The plan every account starts on.
pub const FREE: &str = "free";

pub const PLANS: &[Plan] = &[
    Plan {
        code: FREE,
        name: "Free",
        price_jpy_per_month: 0,
        agents: Some(2),
        inboxes: Some(1),
        conversations_per_month: Some(100),
        features: BASIC,
    },
    Plan {
        code: "starter",
        name: "Starter",
        price_jpy_per_month: 2_980,
        agents: Some(5),
        inboxes: Some(3),
        conversations_per_month: Some(1_000),
        features: BASIC,
    },
    Plan {
        code: "pro",
        name: "Pro",
        price_jpy_per_month: 9_800,
        agents: Some(20),
        inboxes: Some(10),
        conversations_per_month: Some(10_000),
        features: WITH_CANNED_RESPONSES,
    },
    Plan {
        code: "business",
        name: "Business",
        price_jpy_per_month: 29_800,
        agents: None,
        inboxes: Some(50),
        conversations_per_month: None,
        features: WITH_CANNED_RESPONSES,
    },
];

pub fn find(code: &str) -> Option<&'static Plan> {
    PLANS.iter().find(|plan| plan.code == code)
}

/// The plan for a stored code; an unknown code (a plan retired from the catalogue) falls back to free.
pub fn plan_or_free(code: &str) -> &'static Plan {
    find(code).unwrap_or(&PLANS[0])
}

impl Plan {
    pub fn summary(&self) -> PlanSummary {
        PlanSummary { code: self.code.to_owned(), name: self.name.to_owned() }
    }

    pub fn limits(&self) -> PlanLimits {
        PlanLimits {
            agents: self.agents,
            inboxes: self.inboxes,
            conversations_per_month: self.conversations_per_month,
            features: self.features.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    pub fn limit(&self, limited: Limited) -> Option<u64> {
        match limited {
            Limited::Agents => self.agents,
            Limited::Inboxes => self.inboxes,
            Limited::ConversationsPerMonth => self.conversations_per_month,
        }
    }
}

/// The least expensive plan that includes `feature` (the catalogue is ordered by price).
pub fn lowest_with(feature: Feature) -> Option<&'static Plan> {
    PLANS.iter().find(|plan| plan.features.contains(&feature))
}

/// The counter name a monthly limit is stored under; seat limits are not counted here.
pub fn counter(limited: Limited) -> Option<&'static str> {
    match limited {
        Limited::ConversationsPerMonth => Some("conversations"),
        Limited::Agents | Limited::Inboxes => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_ordered_by_price_and_free_is_first() {
        assert_eq!(PLANS[0].code, FREE);
        assert!(PLANS.windows(2).all(|w| w[0].price_jpy_per_month < w[1].price_jpy_per_month));
    }

    #[test]
    fn every_feature_of_a_plan_is_in_the_next_plan() {
        for pair in PLANS.windows(2) {
            for feature in pair[0].features {
                assert!(pair[1].features.contains(feature), "{} loses {feature:?}", pair[1].code);
            }
        }
    }
}
