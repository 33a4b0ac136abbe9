"""How long and how healthy: export ETAs, queue positions, queue health figures, Prometheus metrics (no Dagster)."""
