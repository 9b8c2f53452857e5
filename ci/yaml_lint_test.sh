#!/usr/bin/env bash
# yaml_lint_test.sh - the workflows, ClusterFuzzLite's project.yaml and the linter's own
# settings lint clean (yamllint from Debian's package, strict: warnings fail too).
set -euo pipefail
command -v yamllint >/dev/null || { echo "yamllint is not installed (ci/setup.sh installs it)"; exit 1; }
exec yamllint -s -c .yamllint "$@"
