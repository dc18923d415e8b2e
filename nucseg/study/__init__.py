"""The study: leave-one-patient-out folds, scores, result tables and figures."""
