#!/usr/bin/env bash
# From a clone to a verified signature on one machine: the README's walkthrough ("From clone to a
# verified signature") as one script, step for step; test/integration/quickstart.test.ts runs it.
# Needs Node.js 24 with `npm ci` done, and the binaries `bash .ci/run` installs: redis-server,
# docker-registry (or upstream's `registry`), cosign, crane (/opt/sid-tools/usr/bin).
# State goes in the current directory: ./keys (signet's key and webhook secret), ./registry-data,
# ./registry.yml, ./*.log. Uses 127.0.0.1:6379 (Redis), :5000 (registry), :8080 (signet).
# Stops what it started when it ends. COSIGN3=/path/to/cosign3 verifies with cosign 3.x as well.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PATH="$PATH:/opt/sid-tools/usr/bin"
pids=()
started_redis=
cleanup() {
  # each is a subshell (signet is a shell function): stop its child, then it
  for p in "${pids[@]}"; do pkill -TERM -P "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$started_redis" ]; then redis-cli -h 127.0.0.1 -p 6379 shutdown nosave >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
wait_for() { # wait_for WHAT SECONDS COMMAND...
  local what=$1 n=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    n=$((n - 1))
    if [ "$n" -le 0 ]; then echo "quickstart: $what did not come up; see the logs in $PWD" >&2; return 1; fi
    sleep 1
  done
}

# 0. build signet and give its command a name (or: npm install -g . puts signet on PATH)
npm --prefix "$ROOT" run build --silent
signet() { node "$ROOT/dist/src/cli.js" "$@"; }

# 1. Redis, if none answers on 127.0.0.1:6379
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
  started_redis=1
fi
wait_for Redis 10 redis-cli -h 127.0.0.1 -p 6379 ping

# 2. signet on its embedded default (first start: keys/signet.key, keys/signet.pub, keys/webhook-secret)
signet start >signet.log 2>&1 &
pids+=($!)
wait_for signet 60 curl -fsS http://127.0.0.1:8080/healthz

# 3. a registry on 127.0.0.1:5000 that notifies signet with its secret (deploy/registry-config.yml is a template)
sed -e "s|\${SIGNET_HOOK_SECRET}|$(cat keys/webhook-secret)|" -e "s|/var/lib/registry|$PWD/registry-data|" \
  "$ROOT/deploy/registry-config.yml" >registry.yml
"$(command -v docker-registry || command -v registry)" serve registry.yml >registry.log 2>&1 &
pids+=($!)
wait_for registry 30 curl -fsS http://127.0.0.1:5000/v2/

# 4. push an image: docker push, skopeo copy or crane; here a one-layer image made by crane
echo 'hello from signet' >hello.txt && tar -cf hello.tar hello.txt
crane append --new_layer hello.tar --new_tag 127.0.0.1:5000/demo/hello:v1

# 5. a few seconds later: signet's status and the signature, verified as a user would
wait_for "a signature on 127.0.0.1:5000/demo/hello:v1" 90 cosign verify --key keys/signet.pub --insecure-ignore-tlog=true 127.0.0.1:5000/demo/hello:v1
signet status 127.0.0.1:5000/demo/hello:v1
cosign verify --key keys/signet.pub --insecure-ignore-tlog=true 127.0.0.1:5000/demo/hello:v1
# and with cosign 3.x, when COSIGN3 names it
if [ -n "${COSIGN3:-}" ]; then "$COSIGN3" verify --key keys/signet.pub --insecure-ignore-tlog=true 127.0.0.1:5000/demo/hello:v1; fi
echo "quickstart: 127.0.0.1:5000/demo/hello:v1 is signed and verifies"
