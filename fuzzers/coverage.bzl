"""Which code the fuzzers learn from, and which code ASan watches while they run.

Under --config=libfuzzer everything is compiled with coverage (-fsanitize=fuzzer-no-link).
The framework (the simulated kernel's runtimes and page source, the harness, the oracle,
the program codec and mutator) is not what the fuzzer explores: its coverage only slows
every execution (libFuzzer scans every counter after each run) and rewards inputs for
exercising the checker instead of the allocator. framework_copts() turns coverage off
for such targets.

In both fuzzing builds (libFuzzer and AFL++) it also leaves the framework without
ASan's and UBSan's instrumentation, as libFuzzer and AFL++ leave themselves: what a
fuzzer is for is the allocator and the VM code, which keep both, and about a third of
every execution went to checking the framework's own loads, stores and arithmetic. The
framework still runs under ASan's runtime (SLABFUZZ_ASAN): free pages and objects are
poisoned, fibers announce their stacks, and the oracle asks ASan about every object
handed out, so a poisoned object is reported as before. The framework's own errors are
for --config=asan, where everything is instrumented with both (ci/test: the unit tests,
the corpora replays, the harness on random programs).
"""

def access_copts():
    """SanitizerCoverage's load and store callbacks, for the code under test (the
    allocators; not the VM model, whose host containers made interleavings depend on
    the host heap: docs/design.md): the deterministic runtime makes every shared
    access a potential switch point and feeds alias pairs to the engines
    (allocator/kenv/det_runtime.cc, "Shared accesses"). The callbacks need an edge mode:
    libFuzzer's own; AFL++'s LLVM-native trace-pc-guard (.bazelrc); elsewhere inline
    8-bit counters that nothing reads (kenv_common.cc registers them with a no-op), so
    that NAME_bin still links with libFuzzer there (which refuses trace-pc-guard); under
    TSan trace-pc-guard with callbacks that do nothing (counters are plain byte
    increments: data races for TSan in every threaded run). Not in the perf build, nor
    with --define=slabfuzz_access=off (the interleavings of preemption points alone)."""
    return select({
        "//fuzzers:access_off": [],
        "//fuzzers:engine_libfuzzer": ["-fsanitize-coverage=trace-loads,trace-stores"],
        "//fuzzers:engine_afl": ["-fsanitize-coverage=trace-loads,trace-stores"],
        "//fuzzers:tsan": ["-fsanitize-coverage=trace-pc-guard,trace-loads,trace-stores"],
        "//conditions:default": ["-fsanitize-coverage=inline-8bit-counters,trace-loads,trace-stores"],
    })

def framework_copts():
    return select({
        "//fuzzers:engine_libfuzzer": ["-fno-sanitize=fuzzer-no-link", "-fno-sanitize=address,undefined"],
        "//fuzzers:engine_afl": ["-fno-sanitize=address,undefined"],
        "//conditions:default": [],
    })
