#!/usr/bin/env bash
# Runs every test of the project, installing what the tests need first.
#
#   ./scripts/test.sh
#
# Steps: system packages (Node.js, Python, Chromium, redis-server) when missing; formatting and lints;
# the runtime without its optional features; the docs with warnings as errors; the declared
# minimum Rust version (installed with rustup when missing); the Rust build and tests; a short
# pass of every fuzz target (cargo-fuzz installed when missing); the Node conformance suite with the official SignalR client;
# the Python suite with third-party SignalR clients; the browser test in headless Chromium;
# then no secret in the debug logs the suites' servers wrote.
# A missing tool is installed or reported as a failure: no test is skipped.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nerror: %s\n' "$*" >&2; exit 1; }

apt_updated=0
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    fail "cannot install $* (no apt-get); install it and run again"
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "installing $* needs root or sudo"
    sudo="sudo"
  fi
  if [ "$apt_updated" = 0 ]; then
    $sudo apt-get update -qq || fail "apt-get update failed"
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null || fail "apt-get install $* failed"
}

step "system packages"
command -v cargo >/dev/null 2>&1 || fail "cargo is missing: install Rust (rustup) first"
command -v node >/dev/null 2>&1 || apt_install nodejs npm
command -v npm >/dev/null 2>&1 || apt_install npm
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$chromium_bin" ] || apt_install chromium
[ -x "$chromium_bin" ] || fail "Chromium is missing at $chromium_bin (set CHROMIUM to its path)"
# The Redis backplane's tests start their own redis-server (redis-cli comes with it).
{ command -v redis-server && command -v redis-cli; } >/dev/null 2>&1 || apt_install redis-server
command -v redis-server >/dev/null 2>&1 || fail "redis-server is missing: install the redis-server package"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || fail "Node.js 18 or later is needed, found $(node --version)"
echo "cargo $(cargo --version | cut -d' ' -f2), node $(node --version), $(python3 --version), $("$chromium_bin" --version 2>/dev/null | head -n1), $(redis-server --version | cut -d' ' -f1-3)"

step "formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings

step "build"
cargo build --workspace --all-features --quiet

step "the runtime without optional features (no client, no relay API)"
cargo clippy -p switchboard --all-targets --quiet -- -D warnings
cargo test -p switchboard --quiet

step "documentation (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet
RUSTDOCFLAGS="-D warnings" cargo doc -p switchboard --no-deps --quiet

step "minimum supported Rust version"
msrv="$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
[ -n "$msrv" ] || fail "Cargo.toml declares no rust-version"
case "$msrv" in *.*.*) ;; *) msrv="$msrv.0" ;; esac
command -v rustup >/dev/null 2>&1 || fail "rustup is needed to check the minimum Rust version $msrv"
rustup run "$msrv" rustc --version >/dev/null 2>&1 || rustup toolchain install "$msrv" --profile minimal \
  || fail "could not install Rust $msrv"
# The crates users build: the runtime (every feature), its macros and the relay.
cargo "+$msrv" check -p switchboard -p switchboard-macros -p switchboard-service --all-features \
  --target-dir target/msrv --quiet

step "Rust tests"
cargo test --workspace --all-features --quiet

step "fuzz targets (cargo-fuzz): each over its committed corpus, then 20,000 more inputs"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet \
  || fail "could not install cargo-fuzz"
fuzz_scratch="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-fuzz.XXXXXX")"
fuzz_targets="$(cd fuzz && cargo fuzz list)"
[ -n "$fuzz_targets" ] || fail "fuzz/ lists no fuzz target"
for target in $fuzz_targets; do
  # New inputs go to the scratch directory; the committed corpus is only read.
  mkdir -p "$fuzz_scratch/$target"
  (cd fuzz && cargo fuzz run --sanitizer none --debug-assertions "$target" \
      "$fuzz_scratch/$target" "corpus/$target" -- -runs=20000 -print_final_stats=1 2>&1 \
      | grep -E "^(Done|stat::number_of_executed_units|thread|.*panicked)" ) \
    || fail "fuzz target $target found a failure (see above; its input is in fuzz/artifacts/$target)"
done
rm -rf "$fuzz_scratch"

# From here on every server the suites start also writes its debug log to this directory;
# the last step looks for secrets in them.
debug_logs="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-debug-logs.XXXXXX")"
export SWITCHBOARD_DEBUG_LOG_DIR="$debug_logs"

step "Node conformance suite (@microsoft/signalr)"
(cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error && npm test)

step "Node conformance suite through the relay (service mode)"
relay_key="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "$relay_key" >>"$debug_logs/secrets.txt"
# The relay stops when this script ends: it watches its stdin, a pipe held open here.
coproc RELAY { exec target/debug/switchboard-service --listen 127.0.0.1:0 --access-key "$relay_key" --stop-when-stdin-closes 2>"${TMPDIR:-/tmp}/switchboard-relay.log"; }
relay_port=""
while IFS= read -r -t 30 line <&"${RELAY[0]}"; do
  case "$line" in
    "Now listening on: http://127.0.0.1:"*) relay_port="${line##*:}"; break ;;
  esac
done
[ -n "$relay_port" ] || fail "the relay (switchboard-service) did not start"
# Every hub case, on each transport × protocol: through the official client (skipNegotiation
# clients connect straight to the relay with the URL and token the app hands out), stateful
# reconnect, and raw negotiate, WebSocket, streaming and HTTP-transport cases (a raw client
# follows the app server's redirect). Only the app's raw /echo endpoint stays self-hosted.
(cd tests/conformance && SWITCHBOARD_MODE=service \
  CONFORMANCE_SERVER_ARGS="--service Endpoint=http://127.0.0.1:${relay_port};AccessKey=${relay_key};Version=1.0" \
  npm run test:service)

step "Python suite (signalrcore, pysignalr)"
venv="tests/python/.venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
(cd tests/python && .venv/bin/python -m pytest -q)

step "browser test (headless Chromium)"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && CHROMIUM="$chromium_bin" npm test)

step "no access key, token or signature in the servers' debug logs"
python3 scripts/check-logs-for-secrets.py --self-test
python3 scripts/check-logs-for-secrets.py "$debug_logs"
rm -rf "$debug_logs"

step "all test suites passed"
