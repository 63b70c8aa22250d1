"""SQLAlchemy table definitions of the metadata store (the Alembic migrations' target)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

experiments = Table(
    "experiments",
    metadata,
    Column("experiment_id", AutoId, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("experiment_id", AutoId, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger),
    Column("parent_run_id", String(32)),
    Column("user", String(255), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("heartbeat", BigInteger, nullable=False),
    Index("ix_runs_experiment_start", "experiment_id", "start_time"),
    Index("ix_runs_status_heartbeat", "status", "heartbeat"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_params_key_value", "key", "value"),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.run_id"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("value", Float, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_metrics_run_key_step", "run_id", "key", "step"),
)

latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Float, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_latest_metrics_key_value", "key", "value"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
)

# --- feature store (migration 0002) ---------------------------------------------------------

definitions = Table(
    "definitions",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("spec", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

training_sets = Table(
    "training_sets",
    metadata,
    Column("training_set_id", String(64), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("spec", Text, nullable=False),
)

ingestion_profiles = Table(
    "ingestion_profiles",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("commit_id", String(64), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("profile", Text, nullable=False),
)

forget_log = Table(
    "forget_log",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("entity", String(128), nullable=False),
    Column("keys", Integer, nullable=False),
    Column("rows_removed", BigInteger, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("details", Text, nullable=False),
)

# --- online feature store (migration 0003) --------------------------------------------------

materializations = Table(
    "materializations",
    metadata,
    Column("materialization_id", String(32), primary_key=True),
    Column("group_name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("store", String(512), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("snapshot_us", BigInteger, nullable=False),
    Column("since_us", BigInteger, nullable=True),
    Column("entities", BigInteger, nullable=False),
    Column("rows_written", BigInteger, nullable=False),
    Column("chunks_total", Integer, nullable=False),
    Column("chunks_done", Integer, nullable=False),
    Column("resume_after", Text, nullable=True),
    Column("max_event_us", BigInteger, nullable=True),
    Column("layout", Text, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_materializations_group", "group_name", "version", "store", "started_at"),
)

# --- model registry (migration 0004) --------------------------------------------------------

registered_models = Table(
    "registered_models",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("description", Text, nullable=False),
    Column("gates", Text, nullable=False),  # JSON: the gates declared in code
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(128), ForeignKey("registered_models.name"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("flavor", String(32), nullable=False),
    Column("artifact_sha256", String(64), nullable=False),
    Column("artifact_size", BigInteger, nullable=False),
    Column("onnx_sha256", String(64), nullable=True),
    Column("run_id", String(32), nullable=True),
    Column("training_set_id", String(64), nullable=True),
    Column("spec", Text, nullable=False),  # JSON: signature, libraries, twin, example...
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(128), nullable=False),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(128), ForeignKey("registered_models.name"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("action", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("report_id", String(32), nullable=True),
    Column("at", BigInteger, nullable=False),
    Index("ix_alias_history_model", "name", "alias", "id"),
)

model_evaluations = Table(
    "model_evaluations",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("dataset", String(128), primary_key=True),
    Column("evaluation", Text, nullable=False),  # JSON
    Column("plots", Text, nullable=False),  # JSON: file name -> artifact sha256
    Column("created_at", BigInteger, nullable=False),
)

gate_reports = Table(
    "gate_reports",
    metadata,
    Column("report_id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("alias", String(64), nullable=False),
    Column("passed", Integer, nullable=False),
    Column("forced", Integer, nullable=False),
    Column("report", Text, nullable=False),  # JSON
    Column("created_at", BigInteger, nullable=False),
    Index("ix_gate_reports_version", "name", "version", "created_at"),
)

# --- prediction log (migration 0005) --------------------------------------------------------

predictions = Table(
    "predictions",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("row", Integer, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("role", String(16), primary_key=True),
    Column("at_us", BigInteger, nullable=False),
    # null (migration 0011): a row scored in batch, not served; no latency was measured
    Column("latency_ms", Float, nullable=True),
    Column("entity", Text, nullable=True),  # canonical JSON of the entity's key values
    Column("features", Text, nullable=False),  # JSON
    Column("output", Text, nullable=False),  # JSON
    # migration 0008: the entity lookup's status, and why a row has no prediction
    Column("status", String(16), nullable=True),
    Column("reason", Text, nullable=True),
    Index("ix_predictions_model_at", "model", "at_us"),
    Index("ix_predictions_request", "request_id"),
    Index("ix_predictions_entity", "model", "entity", "at_us"),
)

prediction_labels = Table(
    "prediction_labels",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("row", Integer, primary_key=True),
    Column("label", Text, nullable=False),  # JSON: label column -> value
    Column("labelled_at_us", BigInteger, nullable=False),
)

# --- failed requests of the prediction log (migration 0006) ---------------------------------

prediction_failures = Table(
    "prediction_failures",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("version", Integer, nullable=True),
    Column("role", String(16), nullable=True),
    Column("at_us", BigInteger, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error", String(128), nullable=False),  # the exception's class name only
    Column("endpoint", String(32), nullable=False),
    Column("field", String(255), nullable=True),
    Index("ix_prediction_failures_model_at", "model", "at_us"),
)

# --- monitoring (migration 0007) -------------------------------------------------------------

monitor_results = Table(
    "monitor_results",
    metadata,
    Column("result_id", String(32), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=True),
    Column("start_us", BigInteger, nullable=False),
    Column("end_us", BigInteger, nullable=False),
    Column("checked_at_ms", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("summary", Text, nullable=False),  # JSON
    Column("result", Text, nullable=False),  # JSON
    Index("ix_monitor_results_model_end", "model", "end_us"),
)

monitor_alerts = Table(
    "monitor_alerts",
    metadata,
    Column("alert_id", String(32), primary_key=True),
    Column("result_id", String(32), ForeignKey("monitor_results.result_id"), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=True),
    Column("rule", Text, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("value", Float, nullable=True),
    Column("fired_at_ms", BigInteger, nullable=False),
    Column("evidence", Text, nullable=False),  # JSON
    Column("deliveries", Text, nullable=False),  # JSON list
    Index("ix_monitor_alerts_model_fired", "model", "fired_at_ms"),
)

monitor_rules = Table(
    "monitor_rules",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("rules", Text, nullable=False),  # JSON list of AlertRule.to_dict()
    Column("notify", Text, nullable=False),  # JSON list of notifier texts
    Column("updated_at_ms", BigInteger, nullable=False),
)

monitor_references = Table(
    "monitor_references",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("profile_sha256", String(64), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
)

pipeline_definitions = Table(
    "pipeline_definitions",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("spec", Text, nullable=False),  # JSON, the module's source code included
    Column("created_at_ms", BigInteger, nullable=False),
)

pipeline_schedules = Table(
    "pipeline_schedules",
    metadata,
    Column("pipeline", String(128), primary_key=True),
    Column("cron", String(128), nullable=True),  # None: no schedule
    Column("timezone", String(64), nullable=False),
    Column("declared", Text, nullable=False),  # JSON: the schedule the code last declared
    Column("cursor_ms", BigInteger, nullable=False),  # the last due time enqueued
    Column("updated_at_ms", BigInteger, nullable=False),
)

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("pipeline", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # queued | running | succeeded | failed
    Column("trigger", String(16), nullable=False),  # manual | schedule | alert | upstream
    Column("trigger_detail", Text, nullable=False),  # JSON
    Column("params", Text, nullable=False),  # JSON
    Column("dedupe_key", String(255), nullable=True, unique=True),
    Column("queued_at_ms", BigInteger, nullable=False),
    Column("run_at_ms", BigInteger, nullable=False),  # the run's time (ctx.now)
    Column("started_at_ms", BigInteger, nullable=True),
    Column("ended_at_ms", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("worker", String(128), nullable=True),
    Column("lease_expires_ms", BigInteger, nullable=True),
    Column("result", Text, nullable=False),  # JSON
    Column("error", Text, nullable=True),
    Column("logs", Text, nullable=False),
    Column("steps", Text, nullable=False),  # JSON list
    Index("ix_pipeline_runs_status_queued", "status", "queued_at_ms"),
    Index("ix_pipeline_runs_pipeline_queued", "pipeline", "queued_at_ms"),
)

pipeline_decisions = Table(
    "pipeline_decisions",
    metadata,
    Column("decision_id", String(32), primary_key=True),
    Column("run_id", String(32), nullable=False, unique=True),  # one per pipeline run
    Column("pipeline", String(128), nullable=False),
    Column("pipeline_version", Integer, nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),  # the candidate
    Column("alias", String(64), nullable=False),
    Column("champion", Integer, nullable=True),  # the alias's holder when decided
    Column("policy", String(16), nullable=False),  # auto | approval | shadow
    Column("decision", String(16), nullable=False),  # promoted | pending | approved | ...
    Column("trigger", String(16), nullable=False),
    Column("trigger_detail", Text, nullable=False),  # JSON
    Column("data", Text, nullable=False),  # JSON: windows, commits, training sets
    Column("candidate_metrics", Text, nullable=False),  # JSON
    Column("champion_metrics", Text, nullable=True),  # JSON
    Column("gate_report", Text, nullable=False),  # JSON
    Column("passed", Integer, nullable=False),
    Column("decided_by", String(128), nullable=True),
    Column("decided_at_ms", BigInteger, nullable=True),
    Column("reason", Text, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("shadow", Text, nullable=True),  # JSON: the shadow trial (migration 0015)
    Index("ix_pipeline_decisions_model_version", "model", "version"),
)

# --- durable writes (migration 0010) -----------------------------------------------------------

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("operation", String(32), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("result", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

write_intents = Table(
    "write_intents",
    metadata,
    Column("intent_id", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("target", String(255), nullable=False),
    Column("idempotency_key", String(255), nullable=True, unique=True),
    Column("started_at", BigInteger, nullable=False),
    Column("owner_pid", Integer, nullable=False),
    Column("owner_host", String(255), nullable=False),
    Column("owner_start", String(32), nullable=True),
    Column("payload", Text, nullable=False),
)

write_repairs = Table(
    "write_repairs",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("target", String(255), nullable=False),
    Column("action", String(16), nullable=False),
    Column("detail", Text, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("repaired_at", BigInteger, nullable=False),
)

# --- security (migration 0013) -----------------------------------------------------------------

users = Table(
    "users",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("kind", String(16), nullable=False),  # person | service
    Column("created_at_ms", BigInteger, nullable=False),
    Column("created_by", String(160), nullable=False),
    Column("disabled_at_ms", BigInteger, nullable=True),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", String(16), primary_key=True),  # the token's non-secret prefix
    Column("user_name", String(128), ForeignKey("users.name"), nullable=False),
    Column("digest", String(64), nullable=False),  # sha256 of the whole token, not a blob
    Column("description", Text, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=True),
    Column("revoked_at_ms", BigInteger, nullable=True),
    Column("last_used_ms", BigInteger, nullable=True),
    Index("ix_api_tokens_user", "user_name"),
)

role_grants = Table(
    "role_grants",
    metadata,
    Column("user_name", String(128), ForeignKey("users.name"), primary_key=True),
    Column("project", String(128), primary_key=True),  # "*": every project
    Column("environment", String(32), primary_key=True),  # "*": every environment
    Column("role", String(32), primary_key=True),  # viewer | editor | ... | pii:read
    Column("granted_by", String(160), nullable=False),
    Column("granted_at_ms", BigInteger, nullable=False),
)

audit_log = Table(  # append-only, hash-chained: each hash covers the previous one
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),  # 1, 2, 3, ... no gaps
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(160), nullable=False),
    Column("action", String(64), nullable=False),
    Column("project", String(128), nullable=False),
    Column("environment", String(32), nullable=False),
    Column("target", Text, nullable=False),
    Column("source", String(128), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=False),  # canonical JSON
    Column("prev_hash", String(64), nullable=False, unique=True),  # one successor per entry
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_at", "at_ms"),
    Index("ix_audit_log_actor", "actor", "seq"),
)

audit_head = Table(  # one row: the last entry's seq and hash (0 and the genesis hash at first)
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# --- serving replicas (migration 0014) ----------------------------------------------------------

serving_replicas = Table(
    "serving_replicas",
    metadata,
    Column("replica_id", String(32), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("address", String(512), nullable=True),
    Column("started_at_ms", BigInteger, nullable=False),
    Column("heartbeat_at_ms", BigInteger, nullable=False),
    Column("serving", Text, nullable=False),  # JSON list of ServedSlot
    Index("ix_serving_replicas_heartbeat", "heartbeat_at_ms"),
)
