"""Which code the fuzzers learn from.

Under --config=libfuzzer everything is compiled with coverage (-fsanitize=fuzzer-no-link).
The framework (the simulated kernel's runtimes, the harness, the oracle, the program
codec and mutator) is not what the fuzzer explores: its coverage only slows every
execution (libFuzzer scans every counter after each run) and rewards inputs for
exercising the checker instead of the allocator. framework_copts() turns coverage off
for such targets, keeping ASan and UBSan.
"""

def framework_copts():
    return select({
        "//fuzzers:engine_libfuzzer": ["-fno-sanitize=fuzzer-no-link"],
        "//conditions:default": [],
    })
