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

def framework_copts():
    return select({
        "//fuzzers:engine_libfuzzer": ["-fno-sanitize=fuzzer-no-link", "-fno-sanitize=address,undefined"],
        "//fuzzers:engine_afl": ["-fno-sanitize=address,undefined"],
        "//conditions:default": [],
    })
