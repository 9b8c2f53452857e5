#!/usr/bin/env bash
# run_fuzzer.sh - the NAME_run target: fuzzes NAME_bin from its seed corpus.
#   bazel run --config=libfuzzer //fuzzers:NAME_run -- [--duration=SECONDS] [--out=DIR]
#                                                      [-- libFuzzer flags...]
# The grown corpus and crash files go to DIR (default: out/fuzz/NAME in the
# workspace), which survives a crash of the target and Ctrl-C.
set -uo pipefail
name= bin= corpus= dict= duration=60 out= compile=
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --name=*) name=${1#*=} ;;
    --bin=*) bin=${1#*=} ;;
    --corpus=*) corpus=${1#*=} ;;
    --dict=*) dict=${1#*=} ;;
    --compile=*) compile=${1#*=} ;;
    --duration=*) duration=${1#*=} ;;
    --out=*) out=${1#*=} ;;
    --) shift; extra=("$@"); break ;;
    *) echo "run_fuzzer: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
case "$duration" in ''|*[!0-9]*) echo "run_fuzzer: --duration takes seconds" >&2; exit 2 ;; esac
root=${BUILD_WORKSPACE_DIRECTORY:-$PWD}
out=${out:-$root/out/fuzz/$name}
mkdir -p "$out/corpus" "$out/crashes"
bin=$(realpath "$bin")
# Seeds: text programs compiled to binary, binary ones copied.
for f in "$corpus"/*; do
  [ -f "$f" ] || continue
  case "$f" in
    *.txt) "$compile" "$f" "$out/corpus/seed-$(basename "$f" .txt)" || exit 2 ;;
    *) cp -n "$f" "$out/corpus/" 2>/dev/null || true ;;
  esac
done
args=(-artifact_prefix="$out/crashes/" -print_final_stats=1)
[ "$duration" -gt 0 ] && args+=(-max_total_time="$duration")
[ -n "$dict" ] && args+=(-dict="$(realpath "$dict")")
echo "run_fuzzer: $name for ${duration}s (0: until stopped); corpus $out/corpus, crashes $out/crashes"
exec "$bin" "${args[@]}" "${extra[@]}" "$out/corpus"
