#!/bin/sh
# First start of the Compose `warehouse` server (docker-entrypoint-initdb.d; the database
# `warehouse` exists already): the roles and the registry's database.
#   totesys_modeler   owns the warehouse database: `totesys-cdc init` creates the tables
#                     in it, `totesys-cdc model` writes them
#   totesys_registry  owns the database `registry` (the schema registry's tables)
#   grafana_reader    read-only: SELECT on everything totesys_modeler creates later
#                     (default privileges), for Grafana's `warehouse` datasource
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v modeler_password="$(cat /run/secrets/warehouse-password)" \
  -v registry_password="$(cat /run/secrets/registry-password)" \
  -v reader_password="$(cat /run/secrets/grafana-reader-password)" <<'SQL'
CREATE ROLE totesys_modeler LOGIN PASSWORD :'modeler_password';
CREATE ROLE totesys_registry LOGIN PASSWORD :'registry_password';
CREATE ROLE grafana_reader LOGIN PASSWORD :'reader_password';
ALTER DATABASE warehouse OWNER TO totesys_modeler;
CREATE DATABASE registry OWNER totesys_registry;
REVOKE CONNECT ON DATABASE registry FROM PUBLIC;
REVOKE CONNECT ON DATABASE warehouse FROM PUBLIC;
GRANT CONNECT ON DATABASE warehouse TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE totesys_modeler GRANT USAGE ON SCHEMAS TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE totesys_modeler GRANT SELECT ON TABLES TO grafana_reader;
SQL
