"""The run command's own runtime: Redis, PostgreSQL and SeaweedFS on free ports, the data folder's lock and
env file, process supervision."""
