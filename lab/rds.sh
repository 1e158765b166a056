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
