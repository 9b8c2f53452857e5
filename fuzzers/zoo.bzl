"""The bug zoo: known bugs, each compiled only into a dedicated build.

A zoo bug is selected by name: `--define=slabfuzz_bug=<NAME>` adds
-DSLABFUZZ_BUG_<NAME> to the allocators' compile; without the define no zoo code
exists in any binary. The fuzzers are measured by how quickly they find each bug
(fuzzers/zoo_campaign).
"""

ZOO_BUGS = [
    "SWAP_OUTSIDE_CRIT",
    "REMOTE_FREE_NONATOMIC",
    "RESERVE_OFF_BY_ONE",
    "REFILL_BLOCKS",
    "POLLER_FREES_BOOT_SLAB",
    "NO_DOUBLE_FREE_CHECK",
    "ZERO_SKIPPED_ON_REUSE",
    "SLAB_COUNT_OFF_BY_ONE",
    "NOWAIT_BLOCKS",
    # Races whose window holds no preemption point (found only through the
    # interleavings at shared accesses, allocator/kenv/det_runtime.cc):
    "RING_PUBLISH_EARLY",
    "FULL_PEEK_UNLOCKED",
    "POLL_UNLOCKED_PCPU",
    # Same-CPU: a window outside any critical section with no preemption point, which
    # only an interrupt at a shared access (timer_at) reaches directly:
    "MAG_PUSH_OUTSIDE_CRIT",
]

def zoo_config_settings():
    """One config_setting `zoo_<bug>` per bug (in //fuzzers)."""
    for bug in ZOO_BUGS:
        native.config_setting(
            name = "zoo_" + bug.lower(),
            define_values = {"slabfuzz_bug": bug},
        )

def zoo_copts():
    """The -D flag of the selected zoo bug, if any."""
    d = {"//fuzzers:zoo_" + bug.lower(): ["-DSLABFUZZ_BUG_" + bug] for bug in ZOO_BUGS}
    d["//conditions:default"] = []
    return select(d)
