"""Model serving: loaded versions, request validation, routing, hot swap, the prediction
log, explanations and batch scoring."""
