"""Quality gates: the rules a model version must pass before an alias moves to it.

A gate is a frozen declaration (:class:`MetricGate`, :class:`RegressionGate`,
:class:`FairnessGate`, :class:`BehaviourGate`, :class:`SignatureGate`); the ``check_*``
functions and :func:`run_behaviour` decide pass/fail from what was measured and return a
:class:`GateResult`. They load nothing and store nothing.

Gates are declared in ``modelyard.toml`` under ``[models.NAME.gates]``::

    metrics = ["r2 >= 0.85", "rmse <= 900 on holdout"]
    no_regression = { metrics = ["rmse"], max_relative_drop = 0.02 }
    fairness = { sensitive = "gender", max_error_gap = 150.0 }
    behaviour = ["claims_tests:test_more_damage_costs_more"]
    signature = true

``data`` (``on NAME`` in the text form) names the evaluation data set a gate reads; None
means the default one.

Modules
    ``declarations``  the gates, validated when built, and their dict form
    ``config``        the text form of a metric gate and the ``modelyard.toml`` table
    ``checks``        verdicts: results, the report, and one check per kind of gate
"""

from __future__ import annotations

from modelyard.registry.gates.checks import (
    GateReport,
    GateResult,
    check_fairness,
    check_metric,
    check_regression,
    check_signature,
    primary_metric,
    run_behaviour,
)
from modelyard.registry.gates.config import gates_from_config, parse_metric_gate
from modelyard.registry.gates.declarations import (
    BehaviourGate,
    FairnessGate,
    Gate,
    MetricGate,
    Op,
    RegressionGate,
    SignatureGate,
    gate_from_dict,
)

__all__ = [
    "BehaviourGate",
    "FairnessGate",
    "Gate",
    "GateReport",
    "GateResult",
    "MetricGate",
    "Op",
    "RegressionGate",
    "SignatureGate",
    "check_fairness",
    "check_metric",
    "check_regression",
    "check_signature",
    "gate_from_dict",
    "gates_from_config",
    "parse_metric_gate",
    "primary_metric",
    "run_behaviour",
]
