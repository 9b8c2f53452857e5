#!/usr/bin/env bash
# ci/setup.sh - installs what slabfuzz needs on a fresh Debian 12 machine (as root),
# quietly, and only what is missing. Sourced by ci/test and ci/fuzz.
#
# Everything comes from Debian's packages: Bazel 4.2 (bazel-bootstrap) and its
# platforms, clang 14 with the sanitizer and libFuzzer runtimes, AFL++, GoogleTest
# sources, Google Benchmark, the peer allocators for the benchmarks, Chromium
# (headless) for the dashboard's browser test, yamllint for the CI files and unzip for
# ci/oss-fuzz-check.

SLABFUZZ_PACKAGES=(
  bazel-bootstrap bazel-platforms clang libclang-rt-14-dev llvm
  afl++ googletest libgtest-dev libbenchmark-dev
  libjemalloc-dev libgoogle-perftools-dev libmimalloc-dev
  python3 git chromium yamllint unzip
)

slabfuzz_setup() {
  local missing=()
  local p
  for p in "${SLABFUZZ_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "ci/setup: installing ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "ci/setup: missing packages (${missing[*]}) and not root: install them first" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || return 1
  apt-get install -y -qq "${missing[@]}" >/dev/null || return 1
}
