# shellcheck shell=bash
# The lab's Kubernetes: per region a real kube-apiserver and
# kube-controller-manager of the release pinned in lab/kube/go.mod, built
# from the k8s.io/kubernetes Go module once per machine (and again only when
# the pin changes), backed by that region's lab etcd, served over TLS with
# client certificates, RBAC and the default admission plugins; kubectl of the
# same release; a validating admission webhook per region (lab/kube/webhook.py);
# a kubeconfig with one context per region (and reader and restorer users
# per region, see lab/kube/rbac.yaml). Sourced after lib.sh by lab/up and
# lab/start-region, never executed. lab/stop-region and lab/down stop the
# servers through their pid files (see region_pidfiles in lib.sh).

KUBE_MOD=$LAB_REPO/lab/kube
KUBECONFIG_FILE=$LAB_DIR/kubeconfig
KUBE_PKI=$LAB_DIR/kube/pki

# The pinned release, read from go.mod.
kube_version() {
  awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$KUBE_MOD/go.mod"
}

# Per-machine cache of the built binaries, keyed by the pin (go.mod + go.sum):
# a clean clone, a purge or another checkout of the same pin reuses it.
kube_cache() {
  local key
  key=$(cat "$KUBE_MOD/go.mod" "$KUBE_MOD/go.sum" | sha256sum | cut -c1-12)
  echo "${XDG_CACHE_HOME:-$HOME/.cache}/drtool-lab/kubernetes-$(kube_version)-$key"
}
KUBE_BIN_DIR=$(kube_cache)/bin
KUBECTL=$KUBE_BIN_DIR/kubectl

kube_port()     { echo "$(region_num "$1")6443"; }
kcm_port()      { echo "$(region_num "$1")0257"; }
policy_port()   { echo "$(region_num "$1")6444"; }
kube_url()      { echo "https://127.0.0.1:$(kube_port "$1")"; }
kube_pidfile()  { echo "$LAB_RUN/kube-apiserver-$1.pid"; }
kcm_pidfile()   { echo "$LAB_RUN/kube-controller-manager-$1.pid"; }
# Each region's Services get cluster IPs from its own range, so a restored
# Service must be given a new one, as between real clusters.
service_cidr()  { echo "10.9$(region_num "$1").0.0/16"; }

# go build of the three binaries; skipped when the cache holds this pin.
kube_build() {
  local cache version started log=$LAB_LOGS/kubernetes-build.log
  cache=$(kube_cache)
  version=$(kube_version)
  [[ -n $version ]] || die "no k8s.io/kubernetes version in $KUBE_MOD/go.mod"
  [[ -f $cache/.built ]] && return 0
  command -v go >/dev/null || die "go not found: the lab builds Kubernetes $version with Go (1.24 or newer)"
  mkdir -p "$LAB_LOGS" "$cache/bin"
  log "building Kubernetes $version (kube-apiserver, kube-controller-manager, kubectl) with $(go version | awk '{print $3}'): once per machine, about 4 min on 2 cores with the module cache warm (log $log)"
  started=$(date +%s)
  local minor=${version#v1.}
  minor=${minor%%.*}
  local ldflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  if ! (cd "$KUBE_MOD" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w$ldflags" -o "$cache/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl) >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "building Kubernetes $version failed (log $log)"
  fi
  touch "$cache/.built"
  log "built Kubernetes $version in $(( $(date +%s) - started )) s into $cache/bin"
}

# openssl req/x509 for one certificate signed by the lab CA.
kube_cert() {
  local name=$1 subject=$2 ext=$3
  [[ -f $KUBE_PKI/$name.crt ]] && return 0
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$KUBE_PKI/$name.key" 2>/dev/null
  openssl req -new -key "$KUBE_PKI/$name.key" -subj "$subject" -out "$KUBE_PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$KUBE_PKI/$name.csr" -CA "$KUBE_PKI/ca.crt" -CAkey "$KUBE_PKI/ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile <(printf '%s\n' "$ext") \
    -out "$KUBE_PKI/$name.crt" 2>/dev/null || die "openssl could not sign $name"
  rm -f "$KUBE_PKI/$name.csr"
}

# The lab's PKI, made once: a CA, the API servers' serving certificate, client
# certificates (admin in system:masters, the controller managers, a read-only
# user bound by lab/kube/rbac.yaml) and the service-account key pair.
kube_pki() {
  mkdir -p "$KUBE_PKI"
  chmod 700 "$KUBE_PKI"
  if [[ ! -f $KUBE_PKI/ca.crt ]]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$KUBE_PKI/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$KUBE_PKI/ca.key" -subj "/CN=drtool-lab-kubernetes-ca" \
      -days 3650 -sha256 -out "$KUBE_PKI/ca.crt" 2>/dev/null || die "openssl could not make the lab CA"
  fi
  local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  kube_cert apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.91.0.1,IP:10.92.0.1"
  kube_cert webhook "/CN=lab-policy-webhook" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1"
  kube_cert admin "/O=system:masters/CN=lab-admin" "$client"
  kube_cert controller-manager "/CN=system:kube-controller-manager" "$client"
  kube_cert reader "/O=drtool:backup/CN=lab-reader" "$client"
  kube_cert restorer "/O=drtool:restore/CN=lab-restorer" "$client"
  if [[ ! -f $KUBE_PKI/sa.key ]]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$KUBE_PKI/sa.key" 2>/dev/null
    openssl pkey -in "$KUBE_PKI/sa.key" -pubout -out "$KUBE_PKI/sa.pub" 2>/dev/null
  fi
}

kube_ready() {
  curl -sf -m 2 --cacert "$KUBE_PKI/ca.crt" --cert "$KUBE_PKI/admin.crt" \
    --key "$KUBE_PKI/admin.key" "$1/readyz" >/dev/null
}

kcm_healthy() { curl -sfk -m 2 "https://127.0.0.1:$1/healthz" >/dev/null; }

# kubeconfig for one identity (the controller manager's own).
kube_identity_config() {
  local region=$1 user=$2 file=$LAB_DIR/kube/$2-$1.kubeconfig
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: lab-$region
  cluster:
    server: $(kube_url "$region")
    certificate-authority: $KUBE_PKI/ca.crt
users:
- name: $user
  user:
    client-certificate: $KUBE_PKI/$user.crt
    client-key: $KUBE_PKI/$user.key
contexts:
- name: lab-$region
  context: {cluster: lab-$region, user: $user}
current-context: lab-$region
EOF
  echo "$file"
}

# Start (or keep) one region's control plane and wait until it serves.
start_kube() {
  local region=$1 kcm_config
  [[ -x $KUBE_BIN_DIR/kube-apiserver ]] || die "$KUBE_BIN_DIR/kube-apiserver missing; run lab/up first"
  # The binaries run from the cache, outside $LAB_DIR: the state dir on the
  # command line (certificates) is what pid_alive recognises.
  # ListFromCacheSnapshot off: a list's later pages come from etcd, as on
  # every release before 1.34, so a continue token expires (410) once etcd
  # compacts past it. With it on, the watch cache serves old pages and a
  # backup's handling of expired tokens could not be tested.
  spawn "kube-apiserver-$region" "$(kube_port "$region")" "$KUBE_BIN_DIR/kube-apiserver" \
    --etcd-servers "$(etcd_urls "$region")" \
    --etcd-prefix /registry \
    --bind-address 127.0.0.1 \
    --advertise-address 127.0.0.1 \
    --secure-port "$(kube_port "$region")" \
    --tls-cert-file "$KUBE_PKI/apiserver.crt" \
    --tls-private-key-file "$KUBE_PKI/apiserver.key" \
    --client-ca-file "$KUBE_PKI/ca.crt" \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$KUBE_PKI/sa.pub" \
    --service-account-signing-key-file "$KUBE_PKI/sa.key" \
    --service-cluster-ip-range "$(service_cidr "$region")" \
    --endpoint-reconciler-type none \
    --allow-privileged=true \
    --feature-gates ListFromCacheSnapshot=false \
    --profiling=false \
    --v=1
  wait_for "Kubernetes API of $region on $(kube_url "$region")" \
    "$(kube_pidfile "$region")" kube_ready "$(kube_url "$region")"
  kcm_config=$(kube_identity_config "$region" controller-manager)
  spawn "kube-controller-manager-$region" "$(kcm_port "$region")" "$KUBE_BIN_DIR/kube-controller-manager" \
    --kubeconfig "$kcm_config" \
    --authentication-kubeconfig "$kcm_config" \
    --authorization-kubeconfig "$kcm_config" \
    --bind-address 127.0.0.1 \
    --secure-port "$(kcm_port "$region")" \
    --use-service-account-credentials=true \
    --service-account-private-key-file "$KUBE_PKI/sa.key" \
    --root-ca-file "$KUBE_PKI/ca.crt" \
    --cluster-name "lab-$region" \
    --leader-elect=false \
    --v=1
  wait_for "kube-controller-manager of $region" \
    "$(kcm_pidfile "$region")" kcm_healthy "$(kcm_port "$region")"
  spawn "kube-policy-webhook-$region" "$(policy_port "$region")" python3 "$KUBE_MOD/webhook.py" \
    --region "$region" --port "$(policy_port "$region")" \
    --cert "$KUBE_PKI/webhook.crt" --key "$KUBE_PKI/webhook.key"
  wait_for "the admission policy webhook of $region" \
    "$LAB_RUN/kube-policy-webhook-$region.pid" \
    curl -sf -m 2 --cacert "$KUBE_PKI/ca.crt" "https://127.0.0.1:$(policy_port "$region")/healthz"
  log "$region ready: Kubernetes $(kube_version) API $(kube_url "$region")"
}

# Each region's admission policy (lab/kube/webhook.py): objects labelled
# lab.drtool.dev/reject-in=REGION are refused there.
kube_policy() {
  local region ca
  ca=$(base64 -w0 "$KUBE_PKI/ca.crt")
  for region in "${LAB_REGIONS[@]}"; do
    "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" --context "lab-$region" apply -f - \
      >>"$LAB_LOGS/kube-rbac.log" 2>&1 <<EOF || { tail -n 20 "$LAB_LOGS/kube-rbac.log" >&2; die "registering the policy webhook in $region failed"; }
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: lab-policy
webhooks:
- name: reject-in.lab.drtool.dev
  clientConfig:
    url: https://127.0.0.1:$(policy_port "$region")/validate
    caBundle: $ca
  rules:
  - operations: ["CREATE", "UPDATE"]
    apiGroups: ["*"]
    apiVersions: ["*"]
    resources: ["*"]
    scope: Namespaced
  objectSelector:
    matchExpressions:
    - {key: lab.drtool.dev/reject-in, operator: Exists}
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: ["v1"]
  timeoutSeconds: 5
EOF
  done
}

write_kubeconfig() {
  local region tmp user
  tmp=$(mktemp "$KUBECONFIG_FILE.XXXX")
  {
    echo "# Generated by lab/up: the lab's Kubernetes $(kube_version) control planes (TLS, client certificates, RBAC)."
    echo "# Contexts lab-REGION (admin), lab-REGION-reader (read-only, backups) and lab-REGION-restorer (restores)."
    echo "apiVersion: v1"
    echo "kind: Config"
    echo "clusters:"
    for region in "${LAB_REGIONS[@]}"; do
      printf -- '- name: lab-%s\n  cluster:\n    server: %s\n    certificate-authority: %s\n' \
        "$region" "$(kube_url "$region")" "$KUBE_PKI/ca.crt"
    done
    echo "users:"
    for user in admin reader restorer; do
      printf -- '- name: lab-%s\n  user:\n    client-certificate: %s\n    client-key: %s\n' \
        "$user" "$KUBE_PKI/$user.crt" "$KUBE_PKI/$user.key"
    done
    echo "contexts:"
    for region in "${LAB_REGIONS[@]}"; do
      printf -- '- name: lab-%s\n  context:\n    cluster: lab-%s\n    user: lab-admin\n' "$region" "$region"
      for user in reader restorer; do
        printf -- '- name: lab-%s-%s\n  context:\n    cluster: lab-%s\n    user: lab-%s\n' "$region" "$user" "$region" "$user"
      done
    done
    echo "current-context: lab-${LAB_REGIONS[0]}"
  } >"$tmp"
  if cmp -s "$tmp" "$KUBECONFIG_FILE"; then rm -f "$tmp"; else mv "$tmp" "$KUBECONFIG_FILE"; fi
}

# The least-privilege roles the README documents, in every region.
kube_rbac() {
  local region
  for region in "${LAB_REGIONS[@]}"; do
    "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" --context "lab-$region" apply -f "$KUBE_MOD/rbac.yaml" \
      >>"$LAB_LOGS/kube-rbac.log" 2>&1 || { tail -n 20 "$LAB_LOGS/kube-rbac.log" >&2; die "applying lab/kube/rbac.yaml in $region failed"; }
  done
}

# Replace the LAB_KUBE* lines of $LAB_DIR/env (lab/up rewrites the rest).
append_kube_env() {
  local env=$LAB_DIR/env tmp
  tmp=$(mktemp "$env.XXXX")
  grep -v '^export LAB_KUBE' "$env" >"$tmp" || true
  cat >>"$tmp" <<EOF
export LAB_KUBECONFIG=$KUBECONFIG_FILE
export LAB_KUBECTL=$KUBECTL
export LAB_KUBE_VERSION=$(kube_version)
export LAB_KUBE_CA=$KUBE_PKI/ca.crt
export LAB_KUBE_CERT=$KUBE_PKI/admin.crt
export LAB_KUBE_KEY=$KUBE_PKI/admin.key
export LAB_KUBE_US_EAST_1=$(kube_url us-east-1)
export LAB_KUBE_US_WEST_2=$(kube_url us-west-2)
EOF
  if cmp -s "$tmp" "$env"; then rm -f "$tmp"; else mv "$tmp" "$env"; fi
}

# lab/up: build, PKI, control planes for every region, kubeconfig, RBAC, env.
kube_up_all() {
  local region
  kube_build
  kube_pki
  for region in "${LAB_REGIONS[@]}"; do start_kube "$region"; done
  write_kubeconfig
  kube_rbac
  kube_policy
  append_kube_env
  log "  kubeconfig: $KUBECONFIG_FILE (contexts lab-us-east-1, lab-us-west-2, and -reader/-restorer of each); kubectl $(kube_version): $KUBECTL"
}
