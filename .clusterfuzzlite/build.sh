#!/bin/bash -eu
# .clusterfuzzlite/build.sh - builds slabfuzz's fuzzers into $OUT under OSS-Fuzz's
# build.sh contract (ClusterFuzzLite uses the same one), with Bazel, offline.
#
# Honoured: $SRC (the checkout is $SRC/slabfuzz, or this script's parent folder),
# $WORK (Bazel's output root and disk cache), $OUT (NAME, NAME_seed_corpus.zip,
# NAME.dict, NAME.options per fuzzer), $CC and $CXX (the compilers Bazel's toolchain
# runs), $CFLAGS and $CXXFLAGS (passed as --conlyopt/--cxxopt, without the -fsanitize
# and -fsanitize-coverage flags: which code gets which instrumentation is the Bazel
# configuration's decision - the framework is not the code under test), $SANITIZER
# (address; undefined rides along, as slabfuzz's libFuzzer build always has it) and
# $FUZZING_ENGINE / $LIB_FUZZING_ENGINE (libfuzzer: -fsanitize=fuzzer; afl: AFL++'s
# driver, --config=afl).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="${SRC:-$here}"
[ -d "$src/slabfuzz" ] && src="$src/slabfuzz"
[ -f "$src/WORKSPACE" ] || src="$here"
cd "$src"

: "${OUT:?build.sh: \$OUT is not set}"
: "${WORK:=$(mktemp -d)}"
: "${SANITIZER:=address}"
: "${FUZZING_ENGINE:=libfuzzer}"

case "$FUZZING_ENGINE" in
  libfuzzer) config=libfuzzer ;;
  afl) config=afl ;;
  *) echo "build.sh: FUZZING_ENGINE=$FUZZING_ENGINE is not supported (libfuzzer, afl)" >&2
     exit 1 ;;
esac
case "$SANITIZER" in
  address|undefined) ;;
  coverage) config=srccov ;;
  *) echo "build.sh: SANITIZER=$SANITIZER is not supported (address, undefined, coverage)" >&2
     exit 1 ;;
esac

flags=(--config="$config" --disk_cache="$WORK/bazel-disk" --noshow_progress)
[ -n "${CC:-}" ] && flags+=(--repo_env=CC="$CC" --action_env=CC="$CC")
[ -n "${CXX:-}" ] && flags+=(--repo_env=CXX="$CXX" --action_env=CXX="$CXX")
for f in ${CFLAGS:-}; do
  case "$f" in -fsanitize*|-fno-sanitize*) ;; *) flags+=(--conlyopt="$f") ;; esac
done
for f in ${CXXFLAGS:-}; do
  case "$f" in -fsanitize*|-fno-sanitize*|-stdlib=*) ;; *) flags+=(--cxxopt="$f") ;; esac
done

bazel --output_user_root="$WORK/bazel-root" build "${flags[@]}" //fuzzers:oss_fuzz
bin="$(bazel --output_user_root="$WORK/bazel-root" info "${flags[@]}" bazel-bin 2>/dev/null)"
mkdir -p "$OUT"
for tarball in "$bin"/fuzzers/*_oss_fuzz.tar; do
  tar -xf "$tarball" -C "$OUT"
done
if [ "$config" = afl ]; then
  # afl-fuzz runs the custom mutator from a library beside the fuzzers.
  bazel --output_user_root="$WORK/bazel-root" build --disk_cache="$WORK/bazel-disk" \
    --noshow_progress //fuzzers:libslabfuzz_afl_mutator.so
  cp "$(bazel --output_user_root="$WORK/bazel-root" info bazel-bin 2>/dev/null)/fuzzers/libslabfuzz_afl_mutator.so" "$OUT/"
fi
ls "$OUT"
