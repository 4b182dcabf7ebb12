#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine, and nothing twice:
#   1. Java 17+, Maven, the PostgreSQL server, Chromium with chromedriver (browser tests) and
#      promtool (package prometheus, which on a systemd machine also runs a Prometheus server on
#      :9090 that the project does not use), through apt, only when missing;
#   2. the Kafka broker jars, resolved from Maven Central by infra/pom.xml into the data directory
#      (Maven's local repository caches them, and a marker file skips the step entirely);
#   3. the Schema Registry (Apicurio Registry), its application zip resolved from Maven Central by
#      infra/registry/pom.xml and unpacked into .data/registry/app/<version> (Maven's local
#      repository caches the zip, 109 MB; a marker file skips the step entirely);
#   4. Kafka's console consumer (kafka-tools, the broker's version) with Apicurio's Avro
#      deserializer, for reading the public topics with standard tools (README), resolved by
#      infra/registry/tools/pom.xml into .data/registry/tools/<serde version> (44 MB, of which
#      about 15 MB are not among the broker's jars in Maven's local repository; a marker file
#      skips the step entirely);
#   5. the Python environment in .venv with the project installed editable with its dev extra
#      (skipped while pyproject.toml is unchanged);
#   6. the compiled hot path (infra/build_native.py): the modules of ledger/native.py with mypyc,
#      and the Ed25519 checks of native/ed25519 (Rust, ledger/ed25519.py) with cargo;
#   7. where Go is installed (it is optional), the Go modules of examples/go-producer into Go's
#      module cache and their compiled packages into its build cache (go mod download, go build:
#      no-ops once done; the first build takes about two minutes, outside the test suite).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

say() { printf 'install: %s\n' "$*" >&2; }
fail() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@";
  else fail "need root to run: $* (install it yourself, or run as root)"; fi
}

apt_packages=()
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1; }
if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ]; then apt_packages+=(openjdk-17-jre-headless); fi
command -v mvn >/dev/null || apt_packages+=(maven)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_packages+=(postgresql)
command -v python3 >/dev/null || apt_packages+=(python3 python3-venv)
# Headless Chromium and its driver: the browser tests (tests/support/browser.py).
command -v chromium >/dev/null || apt_packages+=(chromium)
command -v chromedriver >/dev/null || apt_packages+=(chromium-driver)
# promtool checks and unit-tests infra/prometheus (tests/test_prometheus_config.py).
command -v promtool >/dev/null || apt_packages+=(prometheus)
# A C compiler for the hot-path modules compiled with mypyc (step 6; ledger/native.py).
command -v cc >/dev/null || apt_packages+=(gcc)
# Cargo for the Ed25519 checks (step 6; ledger/ed25519.py): rustup's when there is one, else
# Debian's (cargo 1.65, rustc 1.63: native/ed25519/Cargo.lock is resolved for Rust 1.63).
command -v cargo >/dev/null || [ -x "$HOME/.cargo/bin/cargo" ] || apt_packages+=(cargo)
if [ ${#apt_packages[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || fail "missing ${apt_packages[*]} and no apt-get to install them"
  say "installing ${apt_packages[*]} with apt"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' infra/pom.xml)
libs="${LEDGER_KAFKA_LIBS_DIR:-$root/.data/kafka/libs}/$kafka_version"
pom_sum=$(sha256sum infra/pom.xml | cut -c1-16)
if [ ! -f "$libs/.complete-$pom_sum" ]; then
  say "resolving Kafka $kafka_version jars from Maven Central into $libs"
  rm -rf "$libs"
  mvn -q -B -f infra/pom.xml dependency:copy-dependencies \
    -DoutputDirectory="$libs" -Dmdep.includeScope=runtime \
    || fail "Maven could not resolve Kafka $kafka_version (see the output above)"
  touch "$libs/.complete-$pom_sum"
fi

registry_version=$(sed -n 's:.*<apicurio.version>\(.*\)</apicurio.version>.*:\1:p' infra/registry/pom.xml)
registry_app="$root/.data/registry/app/$registry_version"
if [ ! -f "$registry_app/.complete" ]; then
  say "resolving Apicurio Registry $registry_version from Maven Central into $registry_app"
  # Unpacked beside its final place and renamed: an interrupted run leaves no half application.
  rm -rf "$registry_app" "$registry_app.partial"
  mvn -q -B -f infra/registry/pom.xml dependency:unpack -Dregistry.directory="$registry_app.partial" \
    || fail "Maven could not resolve Apicurio Registry $registry_version (see the output above)"
  touch "$registry_app.partial/.complete"
  mv "$registry_app.partial" "$registry_app"
fi

# The Kafka version comes from infra/pom.xml, so the console consumer is the broker's version
# and an upgrade of either re-resolves the tools.
tools_version=$(sed -n 's:.*<apicurio.serde.version>\(.*\)</apicurio.serde.version>.*:\1:p' infra/registry/tools/pom.xml)
registry_tools="$root/.data/registry/tools/$tools_version"
tools_sum=$( (cat infra/registry/tools/pom.xml; echo "kafka $kafka_version") | sha256sum | cut -c1-16)
if [ ! -f "$registry_tools/.complete-$tools_sum" ]; then
  say "resolving Kafka's console consumer $kafka_version and Apicurio's Avro deserializer $tools_version from Maven Central into $registry_tools"
  # Copied beside its final place and renamed: an interrupted run leaves no half classpath.
  rm -rf "$registry_tools" "$registry_tools.partial"
  mvn -q -B -f infra/registry/tools/pom.xml dependency:copy-dependencies -Dkafka.version="$kafka_version" \
    -DoutputDirectory="$registry_tools.partial" -Dmdep.includeScope=runtime \
    || fail "Maven could not resolve the console consumer's jars (see the output above)"
  touch "$registry_tools.partial/.complete-$tools_sum"
  mv "$registry_tools.partial" "$registry_tools"
fi

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || fail "$python is older than 3.11; set PYTHON=/path/to/python3.11+"
py_sum=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f ".venv/.complete-$py_sum" ]; then
  say "creating the Python environment in .venv"
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -U pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  rm -f .venv/.complete-*
  touch ".venv/.complete-$py_sum"
fi

# The hot-path modules compiled with mypyc into .build/native and the Ed25519 checks built with
# cargo into .build/ed25519 (each a no-op while its sources are unchanged; 15 s and, the first
# time, about 30 s otherwise). Without them the same sources, and libsodium, run, slower.
.venv/bin/python infra/build_native.py

# The Go producer example (tests/client/test_go_producer.py builds it). Go's official archive
# installs to /usr/local/go, which is not always on PATH.
go_command=$(command -v go || true)
if [ -z "$go_command" ] && [ -x /usr/local/go/bin/go ]; then go_command=/usr/local/go/bin/go; fi
if [ -n "$go_command" ]; then
  (cd examples/go-producer && "$go_command" mod download && "$go_command" build -o /dev/null .) \
    || fail "the Go modules of examples/go-producer did not download or build (see above)"
fi
