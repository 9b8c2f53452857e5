// ops.h - every operation of a slabfuzz program, declared once.
//
// SLABFUZZ_OPS below is the one list of operations: its entry gives an operation its
// OpCode, its name in the text form, its three fields (name and range of a, b, c, or
// none), its weight in the mutator's choice of a new record, a typical record for the
// engines' dictionary and a line of documentation. Derived from it, and from nothing
// else: the enum OpCode (program.h), the binary codec's canonicalization, the text
// printer and parser (program.cc), the mutator's weights (mutator.cc) and the
// dictionary (`compile --dict`, built into slabfuzz.dict by //fuzzers:slabfuzz_dict).
// What an operation does is its case in Exec::exec (harness.cc): an operation without
// one panics the harness, which a test runs every operation through.
//
// Adding an operation: one entry at the end of SLABFUZZ_OPS (existing codes keep their
// bytes: corpora stay valid) and its case in Exec::exec.
//
// A count is what it says: count=N does a thing N times (0: not at all). An `after`
// is a number of preemption points passed before the one that preempts; `accesses`, a
// number of shared accesses (allocator/kenv/det_runtime.cc counts them).
//
// Invariants: entries are in OpCode order (an entry's position is its code); field names
// within an entry are distinct; a field's range holds 0 (so a zeroed field is valid).
#ifndef SLABFUZZ_FUZZERS_OPS_H_
#define SLABFUZZ_FUZZERS_OPS_H_

#include <cstdint>

namespace slabfuzz {

// What values a field takes (canonicalization takes a value modulo its range).
enum class Range : uint8_t {
  kNone,       // the operation has no such field: always 0
  kZone,       // a zone: the VM's three (0 PV ENTRY, 1 MAP ENTRY, 2 SWAPMETA), then the
               // test zones (3 TEST0 ...): Program::num_zones()
  kTestZone,   // a test zone, 0 TEST0 ...: the header's nzones
  kCpu,        // a CPU: the header's ncpus
  kFlags,      // an allocation flag set (program.cc's table), written by name
  kSizeClass,  // a test zone's object size (program.cc's table), written in bytes
  kPages,      // pages: 0 to the header's budget_pages()
  kBelow,      // 0 .. n - 1
  kRef,        // a reference to the object an earlier allocating operation made: that
               // operation's index in the program (text form @N; see program.h)
  kAny,        // any value the field holds
};

struct Field {
  const char* name;  // nullptr for kNone
  Range range;
  uint32_t n;        // kBelow's bound
};

struct OpSpec {
  const char* name;
  Field a, b, c;     // a, b: one byte each; c: four
  int weight;        // in the mutator's choice of a new record (0: never chosen)
  uint8_t dict_a, dict_b;  // the dictionary's typical record (cpu 0 and cpu 1)
  uint32_t dict_c;
  bool allocates;    // objects it allocates stay live: a reference (kRef) may name it
                     // (not a timer's: it is the schedule, which the mutator moves and
                     // removes while keeping what the CPUs do)
  const char* doc;
};

#define SLABFUZZ_NONE \
  Field { nullptr, Range::kNone, 0 }
#define SLABFUZZ_FIELD(name, range, n) \
  Field { name, Range::range, n }

// X(Enumerator, "name", a, b, c, weight, dict a, dict b, dict c, allocates, "documentation")
#define SLABFUZZ_OPS(X)                                                                        \
  X(kAlloc, "alloc", SLABFUZZ_FIELD("zone", kZone, 0), SLABFUZZ_FIELD("flags", kFlags, 0),     \
    SLABFUZZ_NONE, 24, 3, 2, 0, true, "allocate one object from zone with the flag set")       \
  X(kFree, "free", SLABFUZZ_NONE, SLABFUZZ_NONE, SLABFUZZ_FIELD("obj", kRef, 0), 14, 0,        \
    0, 0, false, "free the object operation obj allocated")                                    \
  X(kRemoteFree, "remote_free", SLABFUZZ_NONE, SLABFUZZ_NONE,                                  \
    SLABFUZZ_FIELD("obj", kRef, 0), 8, 0, 0, 0, false,                                         \
    "free the object operation obj allocated, or the nearest another CPU allocated")           \
  X(kChurn, "churn", SLABFUZZ_FIELD("zone", kZone, 0), SLABFUZZ_FIELD("count", kBelow, 33),    \
    SLABFUZZ_NONE, 4, 3, 15, 0, false, "count times: allocate from zone, pass a preemption "   \
    "point, free")                                                                             \
  X(kPressure, "pressure", SLABFUZZ_NONE, SLABFUZZ_NONE, SLABFUZZ_FIELD("pages", kPages, 0),   \
    4, 0, 0, 1000, false, "other consumers take up to pages free pages (to the normal floor)") \
  X(kFailNext, "fail_next", SLABFUZZ_NONE, SLABFUZZ_FIELD("count", kBelow, 9),                 \
    SLABFUZZ_NONE, 3, 0, 3, 0, false, "the next count non-blocking page requests fail")        \
  X(kRelief, "relief", SLABFUZZ_NONE, SLABFUZZ_NONE, SLABFUZZ_FIELD("pages", kPages, 0), 3,    \
    0, 0, 1000, false, "give back up to pages of what pressure took")                          \
  X(kBootAdvance, "boot_next", SLABFUZZ_NONE, SLABFUZZ_NONE, SLABFUZZ_NONE, 3, 0, 0, 0, false, \
    "the next boot phase (VM_READY to SMP to RUNNING)")                                        \
  X(kVmFault, "vm_fault", SLABFUZZ_NONE, SLABFUZZ_FIELD("flags", kFlags, 0), SLABFUZZ_NONE,    \
    8, 0, 0, 0, false, "a user page fault: a page, a PV entry (and a MAP entry); flags odd: "  \
    "no wait")                                                                                 \
  X(kVmUnmap, "vm_unmap", SLABFUZZ_NONE, SLABFUZZ_NONE, SLABFUZZ_NONE, 3, 0, 0, 0, false,      \
    "unmap one user page")                                                                     \
  X(kPageout, "pageout", SLABFUZZ_NONE, SLABFUZZ_FIELD("count", kBelow, 65), SLABFUZZ_NONE,    \
    4, 0, 3, 0, false, "page out count pages (a SWAPMETA each)")                               \
  X(kInterrupt, "interrupt", SLABFUZZ_FIELD("target", kCpu, 0),                                \
    SLABFUZZ_FIELD("count", kBelow, 17), SLABFUZZ_FIELD("zone", kZone, 0), 5, 1, 7, 3, true,   \
    "an interrupt on CPU target: count M_INTNOWAIT allocations from zone")                     \
  X(kPoll, "poll", SLABFUZZ_NONE, SLABFUZZ_NONE, SLABFUZZ_NONE, 3, 0, 0, 0, false,             \
    "the poller retires surplus slabs (and is kicked to run again)")                           \
  X(kDrain, "drain", SLABFUZZ_FIELD("zone", kZone, 0), SLABFUZZ_NONE, SLABFUZZ_NONE, 3, 3,     \
    0, 0, false, "drain this CPU's slabs of zone")                                             \
  X(kZoneCreate, "zone_create", SLABFUZZ_FIELD("zone", kTestZone, 0),                          \
    SLABFUZZ_FIELD("size", kSizeClass, 0), SLABFUZZ_NONE, 2, 0, 1, 0, false,                   \
    "create test zone (if destroyed) with objects of size bytes")                              \
  X(kZoneDestroy, "zone_destroy", SLABFUZZ_FIELD("zone", kTestZone, 0), SLABFUZZ_NONE,         \
    SLABFUZZ_NONE, 2, 0, 0, 0, false, "free a test zone's objects and destroy it")             \
  X(kReserveChain, "reserve_chain", SLABFUZZ_FIELD("zone", kZone, 0),                          \
    SLABFUZZ_FIELD("count", kBelow, 33), SLABFUZZ_NONE, 3, 3, 15, 0, true,                     \
    "count M_NOWAIT allocations in a row from zone (into its reserve)")                        \
  X(kMisuse, "misuse", SLABFUZZ_FIELD("kind", kBelow, 4), SLABFUZZ_NONE,                       \
    SLABFUZZ_FIELD("obj", kRef, 0), 1, 0, 0, 0, false,                                         \
    "on the object obj allocated: kind 0 double free, 1 wrong zone, 2 interior, 3 "            \
    "foreign pointer: the allocator must panic with the matching message (ends the run)")      \
  X(kPreempt, "preempt", SLABFUZZ_NONE, SLABFUZZ_FIELD("after", kAny, 0),                      \
    SLABFUZZ_FIELD("accesses", kBelow, 256), 4, 0, 3, 0, false,                                \
    "this CPU's thread passes after preemption points, then is preempted at the "              \
    "next or, with accesses > 0, that many shared accesses later")                             \
  X(kTimer, "timer", SLABFUZZ_FIELD("target", kCpu, 0), SLABFUZZ_FIELD("after", kAny, 0),      \
    SLABFUZZ_FIELD("zone", kZone, 0), 4, 1, 3, 3, false,                                       \
    "a timer interrupt of 8 M_INTNOWAIT allocations from zone on CPU target: CPU "             \
    "target passes after preemption points, and it fires at the next")                         \
  X(kFreeSome, "free_some", SLABFUZZ_FIELD("zone", kZone, 0),                                  \
    SLABFUZZ_FIELD("count", kBelow, 33), SLABFUZZ_NONE, 4, 3, 3, 0, false,                     \
    "free the zone's count oldest live objects, oldest first")                                 \
  X(kRealloc, "realloc", SLABFUZZ_FIELD("zone", kZone, 0), SLABFUZZ_NONE,                      \
    SLABFUZZ_FIELD("obj", kRef, 0), 2, 3, 0, 0, true,                                          \
    "move the object obj allocated to zone as krealloc does: a new object there, then "        \
    "the old freed")                                                                           \
  X(kTimerAt, "timer_at", SLABFUZZ_FIELD("target", kCpu, 0), SLABFUZZ_FIELD("zone", kZone, 0), \
    SLABFUZZ_FIELD("accesses", kBelow, 4096), 3, 1, 3, 40, false,                              \
    "a timer interrupt of 8 M_INTNOWAIT allocations from zone on CPU target at its "           \
    "accesses-th shared access from here: at any access of the code under test, or, "          \
    "inside a critical section, at its crit_exit")

#define SLABFUZZ_OP_ENUM(e, ...) e,
enum class OpCode : uint8_t { SLABFUZZ_OPS(SLABFUZZ_OP_ENUM) kNumOps };
#undef SLABFUZZ_OP_ENUM

#define SLABFUZZ_OP_SPEC(e, name, a, b, c, w, da, db, dc, al, doc) \
  OpSpec{name, a, b, c, w, da, db, dc, al, doc},
inline constexpr OpSpec kOpSpecs[] = {SLABFUZZ_OPS(SLABFUZZ_OP_SPEC)};
#undef SLABFUZZ_OP_SPEC

static_assert(sizeof(kOpSpecs) / sizeof(kOpSpecs[0]) == static_cast<size_t>(OpCode::kNumOps));

inline constexpr const OpSpec& op_spec(OpCode op) { return kOpSpecs[static_cast<size_t>(op)]; }

}  // namespace slabfuzz

#endif  // SLABFUZZ_FUZZERS_OPS_H_
