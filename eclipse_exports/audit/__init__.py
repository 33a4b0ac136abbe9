"""The export audit trail: what this project did with each export job, written ahead to Redis, archived daily
to S3 hash-chained and signed, read back and verified."""
