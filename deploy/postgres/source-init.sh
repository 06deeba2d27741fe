#!/bin/sh
# First start of the Compose `source` server (docker-entrypoint-initdb.d; the database
# `totesys` exists already): the roles of the demo source. The tables come later from
# `totesys-cdc simulate --init` (service `source-init`), owned by `totesys`.
#   totesys      the application: owns the database and its tables
#   totesys_cdc  capture: REPLICATION and SELECT only (README "Source prerequisites")
# The publication is created here, by the superuser, FOR ALL TABLES, so capture needs
# no ownership of the tables.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_password="$(cat /run/secrets/totesys-password)" \
  -v cdc_password="$(cat /run/secrets/source-password)" <<'SQL'
CREATE ROLE totesys LOGIN PASSWORD :'app_password';
CREATE ROLE totesys_cdc LOGIN REPLICATION PASSWORD :'cdc_password';
ALTER DATABASE totesys OWNER TO totesys;
ALTER DEFAULT PRIVILEGES FOR ROLE totesys IN SCHEMA public GRANT SELECT ON TABLES TO totesys_cdc;
CREATE PUBLICATION totesys_cdc FOR ALL TABLES;
SQL
