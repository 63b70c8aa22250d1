"""The features of the claims project, defined in code.

``modelyard features plan`` shows what ``modelyard features apply`` would store from this
file: a changed definition becomes a new version, an unchanged one stays as it is. File
paths are relative to the project folder.
"""

from modelyard import Entity, Feature, FeatureGroup, RequestFeatureGroup, Source

customer = Entity("customer", key="customer_id", description="A policy holder.")

policyholders = Source.parquet(
    "data/policyholders.parquet", name="policyholders", timestamp="policy_start",
    description="Policy holders and their vehicles, known from the start of their policy.",
)

claims = Source.parquet(
    "data/claims.parquet", name="claims", timestamp="event_time",
    description="Every claim, stamped with the time it was filed, and its settled value.",
)

customer_profile = FeatureGroup(
    "customer_profile", entity=customer, source=policyholders,
    description="Who the customer is and what they drive.",
    features=[
        Feature("age", "age", description="Age in years."),
        Feature("region", "region"),
        Feature("vehicle_type", "vehicle_type"),
        Feature("vehicle_age", "vehicle_age", description="Age of the vehicle in years."),
        Feature("vehicle_value", "vehicle_value"),
        Feature("annual_mileage_km", "annual_mileage_km"),
        Feature("policy_tenure_years", "policy_tenure_years"),
        Feature("credit_band", "credit_band", description="A (best) to E."),
        Feature("gender", "gender", tags=["sensitive"],
                description="For fairness checks; models do not use it."),
    ],
)

SEVERITY_RANK = ("CASE incident_severity WHEN 'minor' THEN 1 WHEN 'moderate' THEN 2 "
                 "WHEN 'major' THEN 3 WHEN 'total_loss' THEN 4 END")
SERIOUS = "CASE WHEN incident_severity IN ('major', 'total_loss') THEN 1 ELSE 0 END"

claim_history = FeatureGroup(
    "claim_history", entity=customer, source=claims, ttl="365d",
    description="The customer's earlier claims over sliding windows.",
    features=[
        Feature("claims_30d", "count(*)", window="30d", description="Claims in 30 days."),
        Feature("claims_90d", "count(*)", window="90d", description="Claims in 90 days."),
        Feature("claims_365d", "count(*)", window="365d", description="Claims in a year."),
        Feature("amount_30d_mean", "mean(claim_value)", window="30d",
                description="Mean claim value over 30 days."),
        Feature("amount_90d_sum", "sum(claim_value)", window="90d",
                description="Total claimed over 90 days."),
        Feature("amount_365d_mean", "mean(claim_value)", window="365d",
                description="Mean claim value over a year."),
        Feature("amount_365d_max", "max(claim_value)", window="365d",
                description="Largest claim in a year."),
        Feature("severity_90d_max", f"max({SEVERITY_RANK})", window="90d",
                description="Worst severity in 90 days: 1 minor to 4 total loss."),
        Feature("serious_claims_365d", f"sum({SERIOUS})", window="365d",
                description="Major claims and total losses in a year."),
        Feature("last_claim_at", "event_time",
                description="When the latest claim was filed (within the TTL)."),
    ],
)

claim_timing = RequestFeatureGroup(
    "claim_timing", request={"event_time": "timestamp"},
    inputs=["claim_history:last_claim_at"],
    description="Known when a claim is filed: how long since the customer's previous one.",
    features=[
        Feature("days_since_last_claim",
                "(epoch_us(event_time) - epoch_us(last_claim_at)) / 86400000000.0",
                description="Days since the previous claim (missing without one in a year)."),
    ],
)
