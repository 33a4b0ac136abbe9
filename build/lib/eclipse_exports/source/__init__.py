"""The Eclipse source database: table metadata, access checks, export queries, demo data."""
