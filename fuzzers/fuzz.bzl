"""slabfuzz_fuzzer: a fuzz target in the conventions of rules_fuzzing's cc_fuzz_test.

For a fuzzer NAME:
  NAME             a test (tag fuzz-test) replaying corpora/NAME/ in any configuration;
  NAME_bin         the fuzz binary: libFuzzer (-fsanitize=fuzzer) by default, AFL++
                   (libAFLDriver.a, persistent mode) under --config=afl; with the
                   structure-aware custom mutator;
  NAME_plain_bin   the same without the custom mutator (libFuzzer's own mutations);
  NAME_run         fuzz: bazel run --config=libfuzzer //fuzzers:NAME_run -- --duration=60
  NAME.dict        the dictionary (a file beside this macro's BUILD).
"""

load("//fuzzers:coverage.bzl", "framework_copts")

def slabfuzz_fuzzer(name, defines = [], dict = None):
    engine_linkopts = select({
        "//fuzzers:engine_afl": ["/usr/lib/afl/libAFLDriver.a"],
        "//conditions:default": ["-fsanitize=fuzzer"],
    })
    for variant, extra in [("", []), ("_plain", ["SLABFUZZ_NO_CUSTOM_MUTATOR"])]:
        native.cc_library(
            name = name + variant + "_lib",
            srcs = ["fuzz_target.cc"],
            copts = framework_copts(),
            local_defines = defines + extra,
            deps = [
                ":harness",
                ":minimize",
                ":mutator",
                ":target",
            ],
            alwayslink = True,
        )
        native.cc_binary(
            name = name + variant + "_bin",
            linkopts = engine_linkopts,
            deps = [name + variant + "_lib"],
        )
    native.cc_test(
        name = name,
        size = "small",
        srcs = ["replay_main.cc"],
        local_defines = defines,
        args = ["--twice", "corpora/" + name],
        data = ["//corpora:" + name],
        tags = ["fuzz-test"],
        # Linked like the fuzz binaries (static: kenv's thread-local curthread costs a
        # __tls_get_addr call per access from a shared library), so that its --bench
        # measures what a fuzzer runs.
        linkstatic = True,
        deps = [
            ":harness",
            ":minimize",
            ":mutator",
            ":target",
        ],
    )
    native.sh_binary(
        name = name + "_run",
        srcs = ["run_fuzzer.sh"],
        args = [
            "--name=" + name,
            "--bin=$(location :" + name + "_bin)",
            "--corpus=corpora/" + name,
            "--compile=$(location :compile)",
        ] + (["--dict=$(location " + dict + ")"] if dict else []),
        data = [
            ":compile",
            ":" + name + "_bin",
            "//corpora:" + name,
        ] + ([dict] if dict else []),
    )
