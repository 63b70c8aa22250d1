"""A synthetic, realistic motor-insurance data set: policy holders and their claims.

Claims span :data:`MONTHS` months from ``start`` (UTC; :data:`PERIOD_START` unless given: the
demo places it so the history ends at the start of the month it takes as today). The claim
value depends on the vehicle, the driver, the claim and the region through multiplicative
effects and a few interactions, so that a linear model and tree ensembles clearly differ. Each
driver also has a hidden riskiness that no column shows: it makes their claims both more
frequent and costlier, so a customer's claim history says something about their next claim.
Over the last :data:`SHIFT_MONTHS` months the world drifts: over their first month repair
costs inflate, weather and theft claims become more frequent and the south and central regions
report more claims, then the world holds there. From the second of those months floods
begin: a kind of claim no earlier month holds, costly, often a major damage or a total
loss. A model trained before can only price a flood as some other claim, so its error jumps;
one retrained on the months since learns them. Monitoring is meant to find that shift later,
and retraining to recover from it.

Everything is vectorised and deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PERIOD_START = pd.Timestamp("2024-01-01", tz="UTC")
MONTHS = 18
SHIFT_MONTHS = 6

GENDERS = ("female", "male")
REGIONS = ("north", "south", "east", "west", "central")
REGION_P = (0.22, 0.20, 0.18, 0.22, 0.18)
REGION_COST = (1.00, 0.92, 1.05, 1.12, 1.22)
REGION_SHIFT_RATE = (0.04, 0.30, 0.06, 0.04, 0.25)  # extra claims in the shift period
VEHICLE_TYPES = ("hatchback", "sedan", "suv", "van", "sports", "electric")
VEHICLE_P = {  # by gender: a realistic correlation, so fairness checks have work to do
    "female": (0.31, 0.30, 0.18, 0.06, 0.03, 0.12),
    "male": (0.19, 0.30, 0.22, 0.14, 0.07, 0.08),
}
VEHICLE_VALUE = (14_000, 22_000, 32_000, 26_000, 48_000, 38_000)
VEHICLE_RATE = (1.00, 0.95, 1.05, 1.20, 1.45, 0.90)
CREDIT_BANDS = ("A", "B", "C", "D", "E")
CREDIT_RATE = (0.80, 0.90, 1.00, 1.20, 1.45)
CLAIM_TYPES = ("collision", "glass", "theft", "weather", "vandalism", "liability", "flood")
CLAIM_TYPE_P = (0.38, 0.20, 0.09, 0.10, 0.08, 0.15, 0.0)
CLAIM_TYPE_P_SHIFTED = (0.32, 0.13, 0.14, 0.21, 0.08, 0.12, 0.0)
SHIFT_RAMP_MONTHS = 1  # the shift builds up over the first month of its period, then holds
FLOOD_ONSET_MONTHS = 1  # that far into the shift period floods begin, a kind of claim the
FLOOD_SHARE = 0.12  # earlier months never saw; this share of the claims from then on
CLAIM_BASE_COST = (3_200.0, 450.0, 6_500.0, 2_400.0, 900.0, 5_200.0, 12_000.0)
CLAIM_VEHICLE_ELASTICITY = (0.55, 0.30, 0.60, 0.50, 0.35, 0.0, 0.60)
SEVERITIES = ("minor", "moderate", "major", "total_loss")
SEVERITY_COST = (0.45, 1.0, 2.4, 0.0)  # a total loss is priced from the vehicle value
SEVERITY_P = (  # rows follow CLAIM_TYPES
    (0.45, 0.35, 0.15, 0.05),
    (0.85, 0.15, 0.00, 0.00),
    (0.20, 0.30, 0.20, 0.30),
    (0.40, 0.40, 0.15, 0.05),
    (0.60, 0.30, 0.10, 0.00),
    (0.30, 0.40, 0.25, 0.05),
    (0.05, 0.35, 0.45, 0.15),
)
POLICE_P = (0.45, 0.02, 0.95, 0.10, 0.70, 0.60, 0.05)
REPAIR_SHOPS = ("partner", "independent", "dealer")
REPAIR_SHOP_COST = (0.88, 1.00, 1.25)
BASE_CLAIM_RATE = 3.0  # expected claims per customer over the whole period
MONTHLY_INFLATION = 0.0025
SHIFT_REPAIR_INFLATION = 0.25  # extra repair-cost inflation reached at the end of the period
HIDDEN_RISK_SPREAD = 0.5  # sigma of a driver's hidden riskiness (lognormal, mean 1)
HIDDEN_RISK_FREQUENCY = 0.8  # how strongly it raises the claim rate (an exponent)
HIDDEN_RISK_SEVERITY = 0.8  # and the claim value

POLICYHOLDER_COLUMNS = (
    "customer_id", "age", "gender", "region", "vehicle_type", "vehicle_age", "vehicle_value",
    "annual_mileage_km", "policy_tenure_years", "credit_band", "policy_start",
)
CLAIM_COLUMNS = (
    "claim_id", "customer_id", "event_time", "claim_type", "incident_severity",
    "police_report", "repair_shop", "days_to_report", "vehicles_involved", "claim_value",
)


@dataclass(frozen=True)
class ClaimsData:
    """The two tables of the demo, and the period the claims cover."""

    policyholders: pd.DataFrame
    claims: pd.DataFrame
    start: pd.Timestamp
    end: pd.Timestamp
    shift_start: pd.Timestamp


def period_bounds(start: pd.Timestamp = PERIOD_START, months: int = MONTHS,
                  shift_months: int = SHIFT_MONTHS) -> tuple[pd.Timestamp, pd.Timestamp,
                                                             pd.Timestamp]:
    end = start + pd.DateOffset(months=months)
    return start, end, end - pd.DateOffset(months=shift_months)


def _pick(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One index per row of ``probs`` (rows sum to 1), by inverse CDF."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs))[:, None] * cum[:, -1:]
    index: np.ndarray = np.minimum((u > cum).sum(axis=1), probs.shape[1] - 1)
    return index


def _labels(values: tuple[str, ...], index: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=object)[index], dtype="str")


def generate_policyholders(n: int, seed: int = 42,
                           start: pd.Timestamp = PERIOD_START) -> pd.DataFrame:
    """``n`` policy holders with their vehicle, policy and a sensitive attribute (gender)."""
    rng = np.random.default_rng([seed, 1])
    age = np.clip(np.rint(rng.normal(46, 15, n)), 18, 85).astype(np.int64)
    gender = rng.choice(len(GENDERS), n, p=(0.49, 0.51))
    region = rng.choice(len(REGIONS), n, p=REGION_P)
    vehicle_p = np.asarray([VEHICLE_P[g] for g in GENDERS])[gender]
    young = (age < 27)[:, None] * np.asarray([0.0, 0.0, 0.0, 0.0, 0.05, 0.0])
    vehicle = _pick(rng, vehicle_p + young)
    vehicle_age = np.clip(np.rint(rng.gamma(2.0, 3.2, n)), 0, 25).astype(np.int64)
    value = (np.asarray(VEHICLE_VALUE)[vehicle] * 0.88 ** vehicle_age
             * rng.lognormal(0.0, 0.25, n))
    mileage = np.rint(rng.lognormal(np.log(12_000), 0.45, n) / 100) * 100
    tenure = np.minimum(np.floor(rng.exponential(5.0, n)), age - 18).astype(np.int64)
    score = rng.normal(0, 1, n) - 0.02 * (age - 46) - 0.04 * tenure
    credit = np.digitize(score, (-1.1, -0.3, 0.5, 1.2))
    days_before = tenure * 365 + rng.integers(0, 365, n)
    return pd.DataFrame({
        "customer_id": np.arange(1, n + 1, dtype=np.int64),
        "age": age,
        "gender": _labels(GENDERS, gender),
        "region": _labels(REGIONS, region),
        "vehicle_type": _labels(VEHICLE_TYPES, vehicle),
        "vehicle_age": vehicle_age,
        "vehicle_value": np.round(value, 2),
        "annual_mileage_km": mileage.astype(np.int64),
        "policy_tenure_years": tenure,
        "credit_band": _labels(CREDIT_BANDS, credit),
        "policy_start": (start - pd.to_timedelta(days_before, unit="D")).as_unit("us"),
    })


def _claim_rates(people: pd.DataFrame) -> np.ndarray:
    age = people["age"].to_numpy()
    age_rate = np.where(age < 25, 1.6, np.where(age > 70, 1.25, 1.0))
    vehicle = pd.Categorical(people["vehicle_type"], categories=VEHICLE_TYPES).codes
    credit = pd.Categorical(people["credit_band"], categories=CREDIT_BANDS).codes
    mileage = (people["annual_mileage_km"].to_numpy() / 12_000) ** 0.5
    rate: np.ndarray = (BASE_CLAIM_RATE * age_rate * np.asarray(VEHICLE_RATE)[vehicle]
                        * np.asarray(CREDIT_RATE)[credit] * mileage)
    return rate


def hidden_risk(customers: int, seed: int = 42) -> np.ndarray:
    """Each driver's riskiness, never written to the data: only their claims reveal it."""
    rng = np.random.default_rng([seed, 3])
    spread = HIDDEN_RISK_SPREAD
    risk: np.ndarray = rng.lognormal(-spread ** 2 / 2, spread, customers)
    return risk


def _ramp_end(shift_start: pd.Timestamp, end: pd.Timestamp) -> pd.Timestamp:
    """Where the shift has built up fully: :data:`SHIFT_RAMP_MONTHS` in, or at the end."""
    ramp_end: pd.Timestamp = min(end, shift_start + pd.DateOffset(months=SHIFT_RAMP_MONTHS))
    return ramp_end


def _rising_then_flat(u: np.ndarray, span: float, ramp: float) -> np.ndarray:
    """Offsets in [0, span) from uniform draws ``u``: their density rises linearly over
    [0, ramp), then stays flat (inverse transform sampling)."""
    total = span - ramp / 2
    mass = u * total
    offsets: np.ndarray = np.where(mass <= ramp / 2, np.sqrt(2 * ramp * mass),
                                   mass + ramp / 2)
    return offsets


def _event_times(rng: np.random.Generator, people: pd.DataFrame, risk: np.ndarray,
                 start: pd.Timestamp, end: pd.Timestamp, shift_start: pd.Timestamp
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Claim owners (row positions into ``people``) and event times in ns since the epoch."""
    rate = _claim_rates(people) * risk ** HIDDEN_RISK_FREQUENCY
    base_n = rng.poisson(rate)
    region = pd.Categorical(people["region"], categories=REGIONS).codes
    extra_n = rng.poisson(rate * np.asarray(REGION_SHIFT_RATE)[region])
    owners = np.concatenate([np.repeat(np.arange(len(people)), base_n),
                             np.repeat(np.arange(len(people)), extra_n)])
    t0, t1, ts = start.value, end.value, shift_start.value
    base_t = t0 + rng.random(int(base_n.sum())) * (t1 - t0)
    # extra claims grow over the shift's first months (their density rises linearly), then
    # hold
    ramp = _ramp_end(shift_start, end).value - ts
    extra_t = ts + _rising_then_flat(rng.random(int(extra_n.sum())), t1 - ts, ramp)
    times = np.concatenate([base_t, extra_t]).astype(np.int64) // 1_000_000_000 * 1_000_000_000
    order = np.argsort(times, kind="stable")
    return owners[order], times[order]


def generate_claims(people: pd.DataFrame, seed: int = 42, start: pd.Timestamp = PERIOD_START,
                    months: int = MONTHS, shift_months: int = SHIFT_MONTHS) -> pd.DataFrame:
    """The claims of ``people`` over ``months`` months, with a drift in the last ones."""
    rng = np.random.default_rng([seed, 2])
    start, end, shift_start = period_bounds(start, months, shift_months)
    risk = hidden_risk(len(people), seed)
    owner, times = _event_times(rng, people, risk, start, end, shift_start)
    n = len(owner)
    ramp_end = _ramp_end(shift_start, end)
    shift = np.clip((times - shift_start.value) / (ramp_end.value - shift_start.value), 0.0, 1.0)
    elapsed_months = (times - start.value) / (end.value - start.value) * months

    type_p = ((1 - shift)[:, None] * np.asarray(CLAIM_TYPE_P)
              + shift[:, None] * np.asarray(CLAIM_TYPE_P_SHIFTED))
    flood_start = shift_start + pd.DateOffset(months=FLOOD_ONSET_MONTHS)
    if shift_months > FLOOD_ONSET_MONTHS:
        flooded = times >= flood_start.value
        type_p[flooded] *= 1 - FLOOD_SHARE
        type_p[flooded, CLAIM_TYPES.index("flood")] = FLOOD_SHARE
    ctype = _pick(rng, type_p)
    severity = _pick(rng, np.asarray(SEVERITY_P)[ctype])
    p = people.iloc[owner]
    age = p["age"].to_numpy()
    vehicle = pd.Categorical(p["vehicle_type"], categories=VEHICLE_TYPES).codes
    vehicle_age = p["vehicle_age"].to_numpy()
    vehicle_value = p["vehicle_value"].to_numpy()
    region = pd.Categorical(p["region"], categories=REGIONS).codes
    credit = pd.Categorical(p["credit_band"], categories=CREDIT_BANDS).codes
    old_major = (severity == 2) & (vehicle_age > 12) & (rng.random(n) < 0.3)
    severity = np.where(old_major, 3, severity)

    police = rng.random(n) < np.clip(np.asarray(POLICE_P)[ctype] + 0.2 * (severity >= 2), 0, 1)
    premium_car = (vehicle == VEHICLE_TYPES.index("electric")) | (
        vehicle == VEHICLE_TYPES.index("sports")) | (vehicle_age < 3)
    shop_p = np.where(premium_car[:, None], (0.30, 0.25, 0.45), (0.52, 0.38, 0.10))
    shop = _pick(rng, shop_p)
    late = rng.random(n) < 0.06
    days_to_report = (rng.geometric(0.35, n) - 1 + late * np.rint(rng.exponential(40, n)))
    multi = np.isin(ctype, (CLAIM_TYPES.index("collision"), CLAIM_TYPES.index("liability")))
    vehicles_involved = 1 + multi * rng.poisson(0.6, n)

    value = (np.asarray(CLAIM_BASE_COST)[ctype] * np.asarray(SEVERITY_COST)[severity]
             * (vehicle_value / 25_000) ** np.asarray(CLAIM_VEHICLE_ELASTICITY)[ctype]
             * np.asarray(REPAIR_SHOP_COST)[shop])
    total_loss = severity == 3
    value = np.where(total_loss, vehicle_value * rng.uniform(0.75, 1.0, n), value)
    liability = ctype == CLAIM_TYPES.index("liability")
    value *= np.where(liability, vehicles_involved ** 0.8
                      * np.where(age < 25, 1.35, np.where(age > 75, 1.2, 1.0)), 1.0)
    value *= np.where((age < 26) & (vehicle == VEHICLE_TYPES.index("sports")), 1.4, 1.0)
    value *= np.where(days_to_report > 30, 1.3, 1.0)
    value *= np.where((ctype == CLAIM_TYPES.index("theft")) & ~police, 1.25, 1.0)
    value *= np.where(credit == 4, 1.1, 1.0) * np.asarray(REGION_COST)[region]
    repair = ~total_loss & ~liability
    value *= (1 + MONTHLY_INFLATION) ** elapsed_months
    value *= 1 + repair * SHIFT_REPAIR_INFLATION * shift
    value *= np.where(repair & (vehicle == VEHICLE_TYPES.index("electric")), 1 + 0.2 * shift, 1)
    value *= risk[owner] ** HIDDEN_RISK_SEVERITY * rng.lognormal(0.0, 0.3, n)

    return pd.DataFrame({
        "claim_id": np.arange(1, n + 1, dtype=np.int64),
        "customer_id": p["customer_id"].to_numpy(),
        "event_time": pd.to_datetime(times, unit="ns", utc=True).as_unit("us"),
        "claim_type": _labels(CLAIM_TYPES, ctype),
        "incident_severity": _labels(SEVERITIES, severity),
        "police_report": police,
        "repair_shop": _labels(REPAIR_SHOPS, shop),
        "days_to_report": days_to_report.astype(np.int64),
        "vehicles_involved": vehicles_involved.astype(np.int64),
        "claim_value": np.round(np.maximum(value, 50.0), 2),
    })


def generate(customers: int = 20_000, seed: int = 42, start: pd.Timestamp = PERIOD_START,
             months: int = MONTHS, shift_months: int = SHIFT_MONTHS) -> ClaimsData:
    """Policy holders and their claims, deterministic for ``seed``."""
    people = generate_policyholders(customers, seed, start)
    claims = generate_claims(people, seed, start, months, shift_months)
    begin, end, shift_start = period_bounds(start, months, shift_months)
    return ClaimsData(people, claims, begin, end, shift_start)
