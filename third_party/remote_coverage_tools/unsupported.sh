#!/bin/sh
# Stand-in for Bazel's coverage tools: `bazel coverage` is not supported offline.
echo "slabfuzz: bazel coverage is not supported offline (remote_coverage_tools is a stand-in)" >&2
exit 1
