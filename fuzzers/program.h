// program.h - a slabfuzz program as data: a header and a sequence of operations,
// each bound to a virtual CPU. One decoder, one encoder, one text form.
//
// Binary encoding: a 16-byte header, then 8-byte records. Every byte string decodes
// to a valid program: values are taken modulo their range, a trailing partial record
// is dropped, and at most kMaxOps records are read.
//
// References (as syzkaller's resources): an operation that uses an object (free,
// remote_free, misuse, realloc: ops.h's kRef fields) names the operation that
// allocated it by its index in the program, written "obj=@N" in the text form. A
// reference is canonical when it names an earlier operation that allocates (ops.h's
// `allocates`); any other value is taken to the nearest earlier one (if none is at or
// before the value, to the first one; with none at all, to @0, which names nothing).
// The structural edits below (insert, erase, move, swap) keep every reference
// naming the operation it named, so an edit elsewhere never changes what a free frees.
// When the program runs, a reference frees the oldest live object that operation
// allocated; if there is none (not yet allocated on another CPU, freed already, or the
// allocation failed), the live object allocated by the nearest operation before it,
// else after it (harness.cc; deterministic, as the interleaving is).
//
// encode(decode(b)) is the canonical form of b, and decode(encode(p)) == p for every
// decoded p.
//
// Text form: one line per operation, "cpuN verb key=value ...", after a "config"
// line; parse_text(to_text(p)) == p, and hand-written programs parse the same way.
#ifndef SLABFUZZ_FUZZERS_PROGRAM_H_
#define SLABFUZZ_FUZZERS_PROGRAM_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fuzzers/ops.h"

namespace slabfuzz {

inline constexpr size_t kHeaderSize = 16;
inline constexpr size_t kRecordSize = 8;
inline constexpr size_t kMaxOps = 256;
inline constexpr int kMaxCpus = 4;
inline constexpr int kMaxTestZones = 4;
inline constexpr int kMaxTicks = 8;      // clock interrupts per CPU and run, at most
inline constexpr int kTickAllocs = 3;    // objects each clock interrupt allocates
inline constexpr int kTickFollow = 7;    // tick_zone: the zone its CPU allocates from
inline constexpr int kVmZones = 3;  // PV ENTRY, MAP ENTRY, SWAPMETA

// The operations (OpCode, names, fields, weights): fuzzers/ops.h.
const char* op_name(OpCode op);

// Allocation flags an alloc operation may carry (index into a fixed table).
inline constexpr int kNumFlagSets = 8;
int flag_set(int index);
const char* flag_set_name(int index);

// Object sizes of test zones (index into a fixed table).
inline constexpr int kNumSizeClasses = 8;
size_t size_class(int index);

struct Op {
  OpCode code = OpCode::kAlloc;
  uint8_t cpu = 0;
  uint8_t a = 0;   // the fields, as the operation's entry in ops.h names them
  uint8_t b = 0;
  uint32_t c = 0;
  bool operator==(const Op&) const = default;
};

enum class BootMode : uint8_t { kRunning = 0, kEarly = 1 };

struct Header {
  uint8_t backend = 0;       // index into backend_names()
  uint8_t vm_mode = 1;       // 0 naive, 1 reserved
  uint8_t ncpus = 2;         // 1..kMaxCpus
  uint8_t budget = 16;       // pages = 1024 + 32 * budget
  uint8_t boot_slabs = 1;    // 0..3
  uint8_t reserve = 2;       // 0..4
  BootMode boot = BootMode::kRunning;
  uint8_t pct_depth = 3;     // 1..8
  uint8_t races = 0;         // 0..7 PCT change points at shared accesses (byte 6, bits 1-3)
  uint32_t seed = 0;         // scheduling
  uint8_t nzones = 2;        // test zones, 1..kMaxTestZones
  uint16_t zone_sizes = 0x0031;  // size class of test zone i in nibble i
  // The clock: every CPU takes a timer interrupt every tick_period() of its preemption
  // points (0: none), up to kMaxTicks times, each allocating kTickAllocs objects from
  // zone tick_zone() (M_INTNOWAIT), as a kernel's hardclock and its callouts would;
  // tick_zone() kTickFollow: from the zone the CPU's thread allocates from (or did last).
  uint8_t tick = 0;  // period in the low 5 bits, zone in the high 3
  bool operator==(const Header&) const = default;
  int tick_period() const { return tick & 0x1f; }
  int tick_zone() const { return tick >> 5; }
  size_t budget_pages() const { return 1024 + 32 * static_cast<size_t>(budget); }
  int zone_size_class(int i) const { return (zone_sizes >> (4 * i)) & 0x7; }
};

struct Program {
  Header header;
  std::vector<Op> ops;
  bool operator==(const Program&) const = default;
  // Zones an operation can name: the VM's three, then the test zones.
  int num_zones() const { return kVmZones + header.nzones; }
};

// Never fails: every byte string is a program.
Program decode(std::span<const uint8_t> bytes);
std::vector<uint8_t> encode(const Program& p);

std::string to_text(const Program& p);
// Parses the text form; on error returns nullopt and sets *error ("line N: ...").
std::optional<Program> parse_text(const std::string& text, std::string* error);

// Clamps every field into range (what decode does to raw bytes), references included.
void canonicalize(Program* p);

// Whether operation i of p names an object (a kRef field, in c).
bool has_ref(const Op& op);

// Edits that keep references naming the operations they named (then canonicalize).
// An edit that removes a referenced operation takes the reference to the nearest
// earlier operation kept.
void insert_ops(Program* p, size_t pos, std::span<const Op> ops);
void erase_ops(Program* p, size_t pos, size_t n);
// Whether op is schedule (preempt, timer, timer_at), not work a CPU does.
bool is_schedule_op(const Op& op);
void move_op(Program* p, size_t from, size_t to);  // to: its index afterwards
void swap_ops(Program* p, size_t i, size_t j);
// The general form: new_of[k] is old operation k's index in *ops after the edit, or -1
// if it was removed; op's reference (in the old numbering) follows its operation.
void renumber_ref(Op* op, std::span<const long> new_of);

// The engines' dictionary (slabfuzz.dict): a typical record of every operation.
std::string dictionary_text();

// Reads a program from a file: the text form if the name ends in ".txt", else the
// binary form. On error returns false and sets *error ("PATH: ...").
bool load_program(const std::string& path, Program* p, std::string* error);

// Writes text to path through a temporary file beside it and a rename: a reader never
// sees a half-written file, and a failed write leaves what was at path untouched. On
// error returns false and sets *error ("cannot write PATH: ...").
bool write_atomically(const std::string& path, const std::string& text, std::string* error);

}  // namespace slabfuzz

#endif  // SLABFUZZ_FUZZERS_PROGRAM_H_
