-- The read-only user Eclipse Exports connects to the Eclipse source database as (ECLIPSE_DATABASE_URL).
-- The project only reads (docs/interface.md section 1): SELECT on the eight tables it queries, nothing else.
-- Run as the database owner, with psql variables for the names:
--
--   psql "postgresql://owner@eclipse-db.internal/eclipse?sslmode=verify-full" \
--        -v db=eclipse -v schema=public -v password=change-me -f deploy/source-database-grants.sql
--
-- Safe to run again. tests/deploy/test_source_grants.py runs this file and an export as the user.

DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'eclipse_readonly') THEN
    CREATE ROLE eclipse_readonly LOGIN;
  END IF;
END $$;
ALTER ROLE eclipse_readonly WITH LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
-- Exports read one consistent snapshot per file (REPEATABLE READ, read only) and may run long: no statement
-- timeout here, but a bound on idle transactions.
ALTER ROLE eclipse_readonly SET default_transaction_read_only = on;
ALTER ROLE eclipse_readonly SET idle_in_transaction_session_timeout = '10min';

GRANT CONNECT ON DATABASE :"db" TO eclipse_readonly;
GRANT USAGE ON SCHEMA :"schema" TO eclipse_readonly;
-- SELECT on each of the interface's tables that exists (audit_logs only where the application has it).
SELECT format('GRANT SELECT ON %I.%I TO eclipse_readonly', table_schema, table_name)
  FROM information_schema.tables
 WHERE table_schema = :'schema'
   AND table_name IN ('workspaces', 'users', 'workspace_members', 'brands', 'alerts', 'infringements', 'actions',
                      'audit_logs')
\gexec
