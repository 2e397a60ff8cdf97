"""Reports: the district hospital's daily summary (SQL aggregation, file writers, nightly job)."""
