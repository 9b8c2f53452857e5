"""slabfuzz_fuzzer: a fuzz target in the conventions of rules_fuzzing's cc_fuzz_test.

For a fuzzer NAME:
  NAME             a test (tag fuzz-test) replaying corpora/NAME/ in any configuration;
  NAME_bin         the fuzz binary: libFuzzer (-fsanitize=fuzzer) by default, AFL++
                   (libAFLDriver.a, persistent mode) under --config=afl; with the
                   structure-aware custom mutator (not with
                   --define=slabfuzz_custom_mutator=off);
  NAME_plain_bin   the same without the custom mutator (libFuzzer's own mutations);
  NAME_run         fuzz: bazel run --config=libfuzzer //fuzzers:NAME_run -- --duration=60
  NAME.dict        the dictionary (a file beside this macro's BUILD);
  NAME_oss_fuzz    NAME_oss_fuzz.tar: NAME_bin as NAME, NAME_seed_corpus.zip (corpora/NAME,
                   compiled), NAME.dict and NAME.options, as OSS-Fuzz and ClusterFuzzLite
                   expect them in $OUT (build it under the engine's configuration).
"""

load("//fuzzers:coverage.bzl", "framework_copts")

# libFuzzer's -max_len for the packaged fuzzers, as ci/fuzz runs them (16 + 8 * 128).
OSS_FUZZ_MAX_LEN = 1040

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
            local_defines = defines + extra + (select({
                "//fuzzers:no_custom_mutator": ["SLABFUZZ_NO_CUSTOM_MUTATOR"],
                "//conditions:default": [],
            }) if not extra else []),
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
    if dict:
        native.genrule(
            name = name + "_oss_fuzz",
            srcs = [":" + name + "_bin", "//corpora:" + name, dict, ":compile"],
            outs = [name + "_oss_fuzz.tar"],
            cmd = ("$(location :oss_fuzz_package) --name=%s --bin=$(location :%s_bin) " +
                   "--compile=$(location :compile) --dict=$(location %s) --max-len=%d " +
                   "--out=$@ $(locations //corpora:%s)") % (name, name, dict, OSS_FUZZ_MAX_LEN, name),
            tools = [":oss_fuzz_package"],
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
