# shellcheck shell=bash
# Shared helpers for the drtool lab scripts (lab/up, lab/down, lab/stop-region,
# lab/start-region). Sourced, never executed. Everything the lab creates lives
# under $LAB_DIR so `lab/down --purge` can remove it in one go.

LAB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB_DIR=$(realpath -m "${DRTOOL_LAB_DIR:-$LAB_REPO/.lab}")
# Drill reports of the lab live outside .lab: `lab/down --purge` keeps them.
LAB_REPORTS=$(realpath -m "${XDG_STATE_HOME:-$HOME/.local/state}/drtool/lab-reports")
LAB_RUN=$LAB_DIR/run    # one pid file per process
LAB_LOGS=$LAB_DIR/logs
# Marker file: --purge only deletes a directory that carries it, so a mistyped
# DRTOOL_LAB_DIR can never wipe something that isn't a lab.
LAB_MARKER=$LAB_DIR/.drtool-lab

LAB_REGIONS=(us-east-1 us-west-2)
GARAGE_VERSION=2.5.0

# Fixed lab credentials: the same S3 key is imported into both regions so one
# set of AWS_* variables works everywhere. Garage's own format: GK + 24 hex, 64 hex.
LAB_KEY_ID=GK996326e2fae3a02423feb8b8
LAB_KEY_SECRET=a935429ae39fbfddca5e48c2c739c9df501ec14bcb423e24a6b3698ef55eb9e9
LAB_ADMIN_TOKEN=5695aa71230097988c1eb3d6b37b90855a92b447c8a3255fd59c877cb276461a

# The cargo bin dir may not be on PATH in non-login shells (tests, CI).
export PATH="$HOME/.cargo/bin:$PATH"
export ETCDCTL_API=3

log() { echo "lab: $*"; }
die() { echo "lab: error: $*" >&2; exit 1; }

# Region number: the first digit of every port of that region (1xxxx / 2xxxx).
region_num() {
  case "$1" in
    us-east-1) echo 1 ;;
    us-west-2) echo 2 ;;
    *) die "unknown region '$1' (expected one of: ${LAB_REGIONS[*]})" ;;
  esac
}

# Distinct RPC secret per region: the two Garages are separate clusters and
# must never join each other.
garage_rpc_secret() {
  case "$1" in
    us-east-1) echo 40f6e98edf65f9033089fea2685a036b61b2a09f0b9fcc384f0abd302c507ab7 ;;
    us-west-2) echo cb544ed3a8a918b2acab4dd16817e0db27274460f218d574c45626c5d0ac7f03 ;;
  esac
}

s3_port()     { echo "$(region_num "$1")3900"; }
rpc_port()    { echo "$(region_num "$1")3901"; }
admin_port()  { echo "$(region_num "$1")3903"; }
# etcd member i (1-based): client x2379+2(i-1), peer = client+1.
etcd_client_port() { echo $(( $(region_num "$1")2379 + 2 * ($2 - 1) )); }
etcd_peer_port()   { echo $(( $(etcd_client_port "$1" "$2") + 1 )); }

s3_url()  { echo "http://127.0.0.1:$(s3_port "$1")"; }
garage_dir()    { echo "$LAB_DIR/garage/$1"; }
garage_config() { echo "$(garage_dir "$1")/garage.toml"; }
etcd_dir()      { echo "$LAB_DIR/etcd/$1"; }

# Member count chosen by the last `lab/up`; start-region reuses it.
lab_members() { cat "$LAB_DIR/etcd-members" 2>/dev/null || echo 1; }

# Comma separated client URLs of all members of a region.
etcd_urls() {
  local region=$1 n=${2:-$(lab_members)} i urls=()
  for ((i = 1; i <= n; i++)); do urls+=("http://127.0.0.1:$(etcd_client_port "$region" "$i")"); done
  (IFS=,; echo "${urls[*]}")
}

# Serialize the lab scripts: two concurrent `lab/up`s would both find a
# process "not running" and start it twice. The lock lives in fd 9, which
# spawn closes for the servers so they never inherit it.
lab_lock() {
  [[ -d $LAB_DIR ]] || return 0
  exec 9>>"$LAB_DIR/.lock"
  flock -w 120 9 || die "another lab script still holds $LAB_DIR/.lock after 120 s"
}

# --- pid handling ----------------------------------------------------------

# True if the pid file names a live process that is really ours: every lab
# process has a path under $LAB_DIR on its command line, which protects us
# against a stale pid file whose pid was reused by an unrelated process.
#
# A process in the middle of execve (spawn's bash becoming the server) shows
# an empty command line for a moment, as does a zombie: an empty one is read
# again for up to 0.5 s before the process counts as gone. No pipe into
# `grep -q` either: under pipefail its early exit could fail the check.
pid_alive() {
  local pidfile=$1 pid cmd i
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  for ((i = 0; i < 5; i++)); do
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
    [[ -n $cmd ]] && break
    sleep 0.1
  done
  [[ $cmd == *"$LAB_DIR/"* ]]
}

# True if something accepts TCP connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# spawn NAME "PORT..." CMD...: start CMD detached (own session, no stdin,
# output to logs/NAME.log) and record its pid in run/NAME.pid. The inner bash
# writes its own pid and then execs, so the pid file holds the real server pid
# even if setsid had to fork. Does nothing if NAME is already running.
# The ports are checked first: Garage keeps running when it cannot bind its
# S3 port, and a foreign listener there would even pass the readiness check.
spawn() {
  local name=$1 ports=$2 port; shift 2
  local pidfile=$LAB_RUN/$name.pid
  if pid_alive "$pidfile"; then
    log "$name already running (pid $(<"$pidfile"))"
    return 0
  fi
  for port in $ports; do
    port_busy "$port" && die "cannot start $name: 127.0.0.1:$port is in use by another process (see: ss -ltnp 'sport = :$port')"
  done
  mkdir -p "$LAB_RUN" "$LAB_LOGS"
  rm -f "$pidfile"
  echo "=== lab: starting $name at $(date -u +%FT%TZ)" >>"$LAB_LOGS/$name.log"
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
    </dev/null >>"$LAB_LOGS/$name.log" 2>&1 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do [[ -s $pidfile ]] && break; sleep 0.1; done
  [[ -s $pidfile ]] || die "$name did not start (log: $LAB_LOGS/$name.log)"
  log "started $name (pid $(<"$pidfile"), log $LAB_LOGS/$name.log)"
}

# True while the process runs. A zombie counts as gone: here PID 1 reaps
# orphans only every few seconds, and `kill -0` would still see them.
proc_running() {
  local st
  st=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $st && $st != Z ]]
}

# stop_pidfiles FILE...: TERM all live ones, wait up to 10 s in total, then
# KILL whatever is left. Pid files are removed in every case.
stop_pidfiles() {
  local f p i alive pids=() names=()
  for f in "$@"; do
    [[ -e $f ]] || continue
    if pid_alive "$f"; then
      pids+=("$(<"$f")"); names+=("$(basename "$f" .pid)")
      kill -TERM "$(<"$f")" 2>/dev/null || true
    fi
  done
  if ((${#pids[@]})); then
    log "stopping ${names[*]}"
    for ((i = 0; i < 100; i++)); do
      alive=0
      for p in "${pids[@]}"; do proc_running "$p" && alive=1; done
      ((alive)) || break
      sleep 0.1
    done
    for p in "${pids[@]}"; do
      if proc_running "$p"; then
        log "pid $p ignored TERM for 10 s, sending KILL"
        kill -KILL "$p" 2>/dev/null || true
      fi
    done
  fi
  for f in "$@"; do rm -f "$f"; done
}

# Pid file of the current etcd leader of a region (empty if unknown).
etcd_leader_pidfile() {
  local region=$1 url port i urls=()
  # Ask only live members: a dead endpoint costs a dial timeout.
  for ((i = 1; i <= $(lab_members); i++)); do
    pid_alive "$LAB_RUN/etcd-$region-e$i.pid" && urls+=("http://127.0.0.1:$(etcd_client_port "$region" "$i")")
  done
  ((${#urls[@]})) || return 0
  url=$(etcdctl --endpoints "$(IFS=,; echo "${urls[*]}")" --dial-timeout=1s --command-timeout=1s \
    endpoint status 2>/dev/null \
    | awk -F', ' '$5 == "true" {print $1; exit}') || true
  [[ -n $url ]] || return 0
  port=${url##*:}
  echo "$LAB_RUN/etcd-$region-e$(( (port - $(etcd_client_port "$region" 1)) / 2 + 1 )).pid"
}

# stop_lab FILE...: stop_pidfiles, but etcd leaders last. A leader told to
# stop tries to hand leadership to a peer first; if its peers are stopping at
# the same time that hand-over times out after ~7 s. With the followers gone
# it has nobody to hand over to and exits at once.
stop_lab() {
  local f region leader leaders=() first=() last=()
  if (($(lab_members) > 1)); then
    for region in "${LAB_REGIONS[@]}"; do
      leader=$(etcd_leader_pidfile "$region")
      [[ -n $leader ]] && leaders+=("$leader")
    done
  fi
  for f in "$@"; do
    if [[ " ${leaders[*]} " == *" $f "* ]]; then last+=("$f"); else first+=("$f"); fi
  done
  stop_pidfiles "${first[@]}"
  stop_pidfiles "${last[@]}"
}

# The Kubernetes part of the lab: real control planes (lab/kube-real.sh,
# kube-apiserver and kube-controller-manager built from the k8s.io/kubernetes
# module). A lab made before them ran the project's test API server, whose
# objects in the region's etcd the real one cannot read: it must be purged.
kube_script() {
  if [[ -e $LAB_DIR/bin/kube-test-apiserver ]]; then
    die "this lab ($LAB_DIR) was made with the retired Kubernetes test API server and its etcd holds that server's objects; run lab/down --purge, then lab/up"
  fi
  echo "$LAB_REPO/lab/kube-real.sh"
}

region_pidfiles() {
  local region=$1
  shopt -s nullglob
  local files=("$LAB_RUN/garage-$region.pid" "$LAB_RUN"/etcd-"$region"-e*.pid "$LAB_RUN"/kube-controller-manager-"$region".pid "$LAB_RUN"/kube-policy-webhook-"$region".pid "$LAB_RUN"/kube-apiserver-"$region".pid)
  shopt -u nullglob
  printf '%s\n' "${files[@]}"
}

# --- waiting ---------------------------------------------------------------

# wait_for WHAT PIDFILE CMD...: poll CMD for up to 60 s; fail early (showing
# the log) if the process behind PIDFILE died.
wait_for() {
  local what=$1 pidfile=$2; shift 2
  local i name
  name=$(basename "$pidfile" .pid)
  for ((i = 0; i < 600; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    if ! pid_alive "$pidfile"; then
      show_log "$name"
      die "$name exited while waiting for $what (log: $LAB_LOGS/$name.log)"
    fi
    sleep 0.1
  done
  show_log "$name"
  die "timed out after 60 s waiting for $what (log: $LAB_LOGS/$name.log)"
}

# The latest run's errors first (they may be far from the end), then the
# end of the log. Logs are appended to; spawn marks where each run starts.
show_log() {
  local f=$LAB_LOGS/$1.log run
  [[ -f $f ]] || return 0
  run=$(awk '/^=== lab: starting / {buf = ""} {buf = buf $0 "\n"} END {printf "%s", buf}' "$f")
  echo "lab: --- errors in $f (latest run):" >&2
  grep -E ' ERROR |"level":"(error|fatal|panic)"' <<<"$run" | tail -n 5 >&2 || true
  echo "lab: --- last lines:" >&2
  tail -n 10 <<<"$run" >&2
}

# Any HTTP status from the S3 port means the API is listening.
s3_answers() {
  local code
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1/") || true
  [[ $code != 000 && -n $code ]]
}

# `garage health` fails while the cluster is "unavailable" (e.g. no layout yet).
garage_healthy() {
  garage -c "$(garage_config "$1")" health -q
}

wait_garage_healthy() {
  wait_for "Garage cluster health in $1" "$LAB_RUN/garage-$1.pid" garage_healthy "$1"
}

etcd_healthy() {
  etcdctl --endpoints "$1" --command-timeout=2s endpoint health
}

# --- starting one region -----------------------------------------------------

garage_bin() {
  command -v garage || die "garage not found (looked in ~/.cargo/bin and PATH); run lab/up"
}

# Run the garage CLI against a region's node; output goes to a log so the
# lab's own messages stay readable, and is shown if the command fails.
gcli() {
  local region=$1; shift
  local out
  if ! out=$(garage -c "$(garage_config "$region")" "$@" 2>&1); then
    echo "$out" >&2
    echo "garage $* -> FAILED" >>"$LAB_LOGS/garage-cli-$region.log"
    die "garage $* failed in $region"
  fi
  printf '%s\n' "garage $*" "$out" >>"$LAB_LOGS/garage-cli-$region.log"
  printf '%s\n' "$out"
}

start_garage() {
  local region=$1 bin
  [[ -f $(garage_config "$region") ]] || die "no Garage config for $region; run lab/up first"
  bin=$(garage_bin)  # separate assignment, so a failure stops the script
  # NO_COLOR: plain log files instead of ANSI escapes.
  RUST_LOG=garage=info NO_COLOR=1 spawn "garage-$region" \
    "$(s3_port "$region") $(rpc_port "$region") $(admin_port "$region")" \
    "$bin" -c "$(garage_config "$region")" server
}

start_etcd() {
  local region=$1 n=$2 i cluster=() name
  for ((i = 1; i <= n; i++)); do
    cluster+=("e$i=http://127.0.0.1:$(etcd_peer_port "$region" "$i")")
  done
  for ((i = 1; i <= n; i++)); do
    name=e$i
    # --initial-* flags only matter on first boot; with an existing data dir
    # etcd ignores them, so the same command line serves both cases. The
    # quota is etcd's largest suggested (8 GiB, not the 2 GiB default): the
    # region's Kubernetes keeps its objects here too, 100k of them in
    # lab/bench-kube BENCH_OBJECTS=100000.
    spawn "etcd-$region-$name" "$(etcd_client_port "$region" "$i") $(etcd_peer_port "$region" "$i")" /usr/bin/etcd \
      --name "$name" \
      --data-dir "$(etcd_dir "$region")/$name" \
      --listen-client-urls "http://127.0.0.1:$(etcd_client_port "$region" "$i")" \
      --advertise-client-urls "http://127.0.0.1:$(etcd_client_port "$region" "$i")" \
      --listen-peer-urls "http://127.0.0.1:$(etcd_peer_port "$region" "$i")" \
      --initial-advertise-peer-urls "http://127.0.0.1:$(etcd_peer_port "$region" "$i")" \
      --initial-cluster "$(IFS=,; echo "${cluster[*]}")" \
      --initial-cluster-token "drtool-lab-$region" \
      --initial-cluster-state new \
      --quota-backend-bytes 8589934592 \
      --logger zap --log-outputs stderr
  done
}

# Start (or leave running) one region's processes, then wait for them. All
# processes are spawned before any wait, because a 3-member etcd can only
# become healthy once its peers are up.
start_region() {
  local region=$1 n=$2
  start_garage "$region"
  start_etcd "$region" "$n"
}

wait_region() {
  local region=$1 n=$2
  wait_for "Garage S3 API of $region on $(s3_url "$region")" \
    "$LAB_RUN/garage-$region.pid" s3_answers "$(s3_url "$region")"
  wait_for "etcd of $region ($(etcd_urls "$region" "$n"))" \
    "$LAB_RUN/etcd-$region-e1.pid" etcd_healthy "$(etcd_urls "$region" "$n")"
  log "$region ready: S3 $(s3_url "$region"), etcd $(etcd_urls "$region" "$n")"
}
