# shellcheck shell=bash
# The lab's RDS side, sourced by lab/up and lab/down: one moto server serves the
# RDS API of every region (moto takes the region from the request signature and
# keeps regions apart), and one PostgreSQL 15 server plays the database behind
# the "instances" for dumps and SQL probes. Neither belongs to a region, so
# lab/stop-region leaves them running; tests simulate an RDS region outage by
# pointing that region's endpoint at a closed port instead.

MOTO_PORT=15000
PG_PORT=15432
PG_USER=postgres
PG_PASSWORD=drtool-lab
PG_BIN=/usr/lib/postgresql/15/bin

rds_ensure_installed() {
  if [[ ! -x $PG_BIN/postgres || ! -x $PG_BIN/pgbench ]]; then
    log "installing PostgreSQL 15"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 postgresql-contrib-15 >/dev/null
  fi
  if ! python3 -c 'import moto.server, flask_cors' 2>/dev/null; then
    log "installing moto[server] from PyPI"
    python3 -m pip install -q 'moto[server]>=5,<6'
  fi
}

pg_dir() { echo "$LAB_DIR/postgres"; }

# PostgreSQL refuses to run as root: the data dir belongs to the postgres user
# and the server runs as that user (setpriv execs, so the pid file stays right).
pg_init() {
  local dir
  dir=$(pg_dir)
  [[ -f $dir/data/PG_VERSION ]] && return 0
  log "initialising PostgreSQL in $dir/data"
  mkdir -p "$dir"
  chown postgres:postgres "$dir"
  printf '%s\n' "$PG_PASSWORD" >"$dir/pwfile"
  chown postgres:postgres "$dir/pwfile"
  chmod 600 "$dir/pwfile"
  setpriv --reuid=postgres --regid=postgres --init-groups \
    "$PG_BIN/initdb" -D "$dir/data" -U "$PG_USER" --pwfile="$dir/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 >"$LAB_LOGS/postgres-initdb.log" 2>&1 \
    || { tail -n 20 "$LAB_LOGS/postgres-initdb.log" >&2; die "initdb failed"; }
  rm -f "$dir/pwfile"
}

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }
moto_ready() { curl -s -o /dev/null -m 2 "http://127.0.0.1:$MOTO_PORT/moto-api/"; }

rds_up() {
  rds_ensure_installed
  pg_init
  spawn postgres "$PG_PORT" setpriv --reuid=postgres --regid=postgres --init-groups \
    "$PG_BIN/postgres" -D "$(pg_dir)/data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$(pg_dir)" -c fsync=off -c max_wal_size=1GB
  # The interpreter itself, not a pyenv shim, so the pid file names the server;
  # the lab dir rides along on the command line because pid_alive looks for it.
  local python
  python=$(python3 -c "import sys; print(sys.executable)")
  spawn moto "$MOTO_PORT" "$python" -c \
    'import sys; from moto.server import main; main(sys.argv[2:])' \
    "$LAB_DIR/moto" -H 127.0.0.1 -p "$MOTO_PORT"
  wait_for "PostgreSQL on :$PG_PORT" "$LAB_RUN/postgres.pid" pg_ready
  wait_for "moto on :$MOTO_PORT" "$LAB_RUN/moto.pid" moto_ready
  cat >>"$LAB_DIR/env" <<ENV
export LAB_RDS_ENDPOINT=http://127.0.0.1:$MOTO_PORT
export LAB_PG_HOST=127.0.0.1
export LAB_PG_PORT=$PG_PORT
export LAB_PG_USER=$PG_USER
export LAB_PG_PASSWORD=$PG_PASSWORD
export LAB_PG_BIN=$PG_BIN
ENV
  log "  RDS API (moto, every region): http://127.0.0.1:$MOTO_PORT; PostgreSQL 15: 127.0.0.1:$PG_PORT user $PG_USER"
}

# The lab's own database target (lab-orders in drtool.toml): an RDS instance
# in moto and the database lab_orders, made once. pgbench's tables plus 40 of
# varied shapes (json, text, numeric, timestamps, foreign keys), as a real
# application database has many tables. Kept across lab/up runs.
rds_seed() {
  local moto="http://127.0.0.1:$MOTO_PORT"
  if ! AWS_ACCESS_KEY_ID=lab AWS_SECRET_ACCESS_KEY=lab aws rds describe-db-instances --region us-east-1 \
      --endpoint-url "$moto" --db-instance-identifier lab-orders >/dev/null 2>&1; then
    AWS_ACCESS_KEY_ID=lab AWS_SECRET_ACCESS_KEY=lab aws rds create-db-instance --region us-east-1 \
      --endpoint-url "$moto" --db-instance-identifier lab-orders --engine postgres \
      --db-instance-class db.t3.micro --master-username postgres \
      --master-user-password not-used-by-the-lab --allocated-storage 20 >/dev/null \
      || die "cannot create the lab-orders instance in moto"
  fi
  local psql=(env PGPASSWORD="$PG_PASSWORD" psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER")
  if ! "${psql[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'lab_orders'" | grep -q 1; then
    log "seeding database lab_orders (pgbench scale 1 and 40 more tables)"
    "${psql[@]}" -d postgres -c "CREATE DATABASE lab_orders" >/dev/null
    PGPASSWORD="$PG_PASSWORD" "$PG_BIN/pgbench" -i -s 1 -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" lab_orders 2>/dev/null
    "${psql[@]}" -d lab_orders -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id bigint PRIMARY KEY, email text NOT NULL, profile jsonb, created timestamptz);
INSERT INTO shop.customers SELECT g, 'user' || g || '@example.com',
  jsonb_build_object('tier', g % 4, 'tags', jsonb_build_array('a' || g % 7, 'b' || g % 11), 'note', repeat('x', 200 + g % 800)),
  now() - (g || ' minutes')::interval FROM generate_series(1, 5000) g;
DO $$
BEGIN
  FOR i IN 1..40 LOOP
    EXECUTE format('CREATE TABLE shop.orders_%s (id bigint PRIMARY KEY, customer bigint REFERENCES shop.customers(id), amount numeric(12,2), status text, lines jsonb, placed timestamptz DEFAULT now())', i);
    EXECUTE format('INSERT INTO shop.orders_%s SELECT g, 1 + g %% 5000, (g * 7 %% 100000) / 100.0, (ARRAY[''new'',''paid'',''shipped'',''returned''])[1 + g %% 4], jsonb_build_array(jsonb_build_object(''sku'', ''SKU-'' || g %% 977, ''qty'', 1 + g %% 5)), now() - (g || '' seconds'')::interval FROM generate_series(1, %s) g', i, 50 * i);
    EXECUTE format('CREATE INDEX ON shop.orders_%s (customer)', i);
  END LOOP;
END $$;
CREATE VIEW shop.open_orders AS SELECT * FROM shop.orders_1 WHERE status <> 'shipped';
SQL
  fi
}
