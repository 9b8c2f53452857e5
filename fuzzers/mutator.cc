// mutator.cc - structure-aware mutation and crossover of programs (see mutator.h).
#include "fuzzers/mutator.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <vector>

namespace slabfuzz {

namespace {

// An opcode by the weights of ops.h's table (allocation and free dominate, as in the
// kernel).
OpCode random_code(Rng& rng) {
  int total = 0;
  for (const OpSpec& s : kOpSpecs) total += s.weight;
  int r = static_cast<int>(rng.below(static_cast<uint64_t>(total)));
  for (size_t i = 0; i < std::size(kOpSpecs); i++) {
    if (r < kOpSpecs[i].weight) return static_cast<OpCode>(i);
    r -= kOpSpecs[i].weight;
  }
  return OpCode::kAlloc;
}

// Small values are the interesting ones for counts and pages; sometimes anything.
uint32_t random_value(Rng& rng) {
  switch (rng.below(4)) {
    case 0: return static_cast<uint32_t>(rng.below(8));
    case 1: return static_cast<uint32_t>(rng.below(64));
    case 2: return static_cast<uint32_t>(rng.below(4096));
    default: return static_cast<uint32_t>(rng.next());
  }
}

void fix(Program* p) {
  canonicalize(p);
}

// Offsets into the window after a preemption point, in shared accesses: log-uniform,
// as most windows are a few accesses long and some are hundreds.
uint32_t random_accesses(Rng& rng) {
  return static_cast<uint32_t>(rng.below(uint64_t{1} << rng.below(9)));
}

// A timer's distance in accesses: log-uniform up to ops.h's range (4096), as an
// operation makes tens to hundreds of shared accesses.
uint32_t random_timer_accesses(Rng& rng) {
  return static_cast<uint32_t>(rng.below(uint64_t{1} << rng.below(13)));
}

// Inputs whose runs reached new alias pairs, by hash (0: empty slot).
constexpr size_t kScheduleSeeds = 4096;
uint64_t g_schedule_seeds[kScheduleSeeds];

uint64_t input_hash(const uint8_t* data, size_t size) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 0x100000001b3ULL;
  return h | 1;
}

}  // namespace

Op random_op(const Program& p, Rng& rng) {
  Op op;
  op.code = random_code(rng);
  op.cpu = static_cast<uint8_t>(rng.below(p.header.ncpus));
  op.a = static_cast<uint8_t>(rng.next());
  op.b = static_cast<uint8_t>(random_value(rng));
  op.c = random_value(rng);
  Program tmp;
  tmp.header = p.header;
  tmp.ops.push_back(op);
  canonicalize(&tmp);
  // A reference is canonicalized where the record lands (as operation 0 here it could
  // only name @0): small values name the program's first allocations, large ones the
  // nearest before it.
  if (has_ref(tmp.ops[0])) tmp.ops[0].c = op.c;
  return tmp.ops[0];
}

Program random_program(Rng& rng, size_t max_ops) {
  uint8_t hb[kHeaderSize];
  for (uint8_t& b : hb) b = static_cast<uint8_t>(rng.next());
  Program p = decode(std::span<const uint8_t>(hb, kHeaderSize));
  size_t n = 1 + rng.below(std::max<size_t>(1, max_ops));
  for (size_t i = 0; i < n; i++) p.ops.push_back(random_op(p, rng));
  canonicalize(&p);
  return p;
}

void mutate_program(Program* p, Rng& rng, size_t max_ops) {
  int rounds = 1 + static_cast<int>(rng.below(3));
  for (int r = 0; r < rounds; r++) {
    std::vector<Op>& ops = p->ops;
    switch (rng.below(9)) {
      // Records are inserted, removed, moved and swapped with program.h's edits: every
      // reference keeps naming the operation it named.
      case 0:  // insert a new record
      case 1:
        if (ops.size() < max_ops) {
          Op op = random_op(*p, rng);
          insert_ops(p, rng.below(ops.size() + 1), std::span<const Op>(&op, 1));
        }
        break;
      case 2:  // delete a record
        if (!ops.empty()) erase_ops(p, rng.below(ops.size()), 1);
        break;
      case 3:  // duplicate a run of records
        if (!ops.empty() && ops.size() < max_ops) {
          size_t from = rng.below(ops.size());
          size_t len = std::min<size_t>(1 + rng.below(4), ops.size() - from);
          len = std::min(len, max_ops - ops.size());
          std::vector<Op> run(ops.begin() + static_cast<long>(from),
                              ops.begin() + static_cast<long>(from + len));
          insert_ops(p, rng.below(ops.size() + 1), run);
        }
        break;
      case 4:  // swap two records
        if (ops.size() >= 2) swap_ops(p, rng.below(ops.size()), rng.below(ops.size()));
        break;
      case 5:  // move a record to another CPU
        if (!ops.empty()) ops[rng.below(ops.size())].cpu = static_cast<uint8_t>(rng.below(p->header.ncpus));
        break;
      case 6:  // change one field of one record
        if (!ops.empty()) {
          Op& op = ops[rng.below(ops.size())];
          switch (rng.below(4)) {
            case 0: op.a = static_cast<uint8_t>(op.a + 1 + rng.below(3)); break;
            case 1: op.b = static_cast<uint8_t>(rng.one_in(2) ? op.b + 1 : random_value(rng)); break;
            case 2: op.c = rng.one_in(2) ? op.c + 1 : random_value(rng); break;
            default: op.code = random_code(rng); break;
          }
        }
        break;
      case 7: {  // change one header field
        Header& h = p->header;
        switch (rng.below(9)) {
          case 8:  // the clock: off, or a period and a zone (often the one its CPU uses)
            h.tick = rng.one_in(3) ? 0 : static_cast<uint8_t>(rng.next());
            if (rng.one_in(2)) h.tick = static_cast<uint8_t>(h.tick | kTickFollow << 5);
            break;
          case 0: h.ncpus = static_cast<uint8_t>(1 + rng.below(kMaxCpus)); break;
          case 1: h.budget = static_cast<uint8_t>(rng.next()); break;
          case 2: h.boot_slabs = static_cast<uint8_t>(rng.below(4)); break;
          case 3: h.reserve = static_cast<uint8_t>(rng.below(5)); break;
          case 4: h.boot = h.boot == BootMode::kEarly ? BootMode::kRunning : BootMode::kEarly; break;
          case 5: h.pct_depth = static_cast<uint8_t>(1 + rng.below(8)); break;
          case 6: h.zone_sizes = static_cast<uint16_t>(rng.next()); h.nzones = static_cast<uint8_t>(1 + rng.below(kMaxTestZones)); break;
          default: h.seed = static_cast<uint32_t>(rng.next()); break;
        }
        break;
      }
      default:  // reschedule: only the interleaving changes
        mutate_schedule(p, rng, max_ops);
        break;
    }
    fix(p);
  }
}

void mutate_schedule(Program* p, Rng& rng, size_t max_ops) {
  int rounds = 1 + static_cast<int>(rng.below(2));
  std::vector<Op>& ops = p->ops;
  for (int r = 0; r < rounds; r++) {
    std::vector<size_t> sched;
    for (size_t i = 0; i < ops.size(); i++)
      if (is_schedule_op(ops[i])) sched.push_back(i);
    Header& h = p->header;
    switch (rng.below(8)) {
      case 0: h.seed = static_cast<uint32_t>(rng.next()); break;
      case 1: h.pct_depth = static_cast<uint8_t>(1 + rng.below(8)); break;
      case 2: h.races = static_cast<uint8_t>(rng.below(8)); break;
      case 3:  // place a directed preemption, often inside a window, or a timer at an access
        if (ops.size() < max_ops) {
          Op op;
          op.cpu = static_cast<uint8_t>(rng.below(h.ncpus));
          if (rng.one_in(3)) {
            op.code = OpCode::kTimerAt;
            op.a = rng.one_in(2) ? op.cpu : static_cast<uint8_t>(rng.below(h.ncpus));
            op.b = static_cast<uint8_t>(rng.below(static_cast<uint64_t>(p->num_zones())));
            op.c = random_timer_accesses(rng);
          } else {
            op.code = OpCode::kPreempt;
            op.b = static_cast<uint8_t>(rng.below(rng.one_in(2) ? 4 : 64));
            op.c = rng.one_in(3) ? 0 : random_accesses(rng);
          }
          insert_ops(p, rng.below(ops.size() + 1), std::span<const Op>(&op, 1));
        }
        break;
      case 4:  // retime a preemption or a timer
        if (!sched.empty()) {
          Op& op = ops[sched[rng.below(sched.size())]];
          if (op.code == OpCode::kTimerAt) {
            if (rng.one_in(2))
              op.c = random_timer_accesses(rng);
            else
              op.c = rng.one_in(2) || op.c == 0 ? op.c + 1 : op.c - 1;
          } else if (op.code == OpCode::kPreempt && rng.one_in(2)) {
            if (rng.one_in(2))
              op.c = random_accesses(rng);
            else
              op.c = rng.one_in(2) || op.c == 0 ? op.c + 1 : op.c - 1;
          } else {
            op.b = static_cast<uint8_t>(rng.one_in(2) ? op.b + 1 : rng.below(64));
          }
        }
        break;
      case 5:  // move one to another place in its CPU's stream, or to another CPU
        if (!sched.empty()) {
          size_t from = sched[rng.below(sched.size())];
          if (rng.one_in(3)) ops[from].cpu = static_cast<uint8_t>(rng.below(h.ncpus));
          move_op(p, from, rng.below(ops.size()));
        }
        break;
      case 6:  // remove one
        if (!sched.empty()) erase_ops(p, sched[rng.below(sched.size())], 1);
        break;
      default:  // the clock
        h.tick = rng.one_in(3) ? 0 : static_cast<uint8_t>(rng.next());
        if (rng.one_in(2)) h.tick = static_cast<uint8_t>(h.tick | kTickFollow << 5);
        break;
    }
    fix(p);
  }
}

void note_schedule_seed(const uint8_t* data, size_t size) {
  uint64_t h = input_hash(data, size);
  g_schedule_seeds[h % kScheduleSeeds] = h;
}

bool is_schedule_seed(const uint8_t* data, size_t size) {
  uint64_t h = input_hash(data, size);
  return g_schedule_seeds[h % kScheduleSeeds] == h;
}

Program crossover_programs(const Program& a, const Program& b, Rng& rng, size_t max_ops) {
  Program c;
  c.header = rng.one_in(2) ? a.header : b.header;
  // Where each parent's operations land in the child (-1: left out): references follow.
  std::vector<long> new_a(a.ops.size(), -1), new_b(b.ops.size(), -1);
  if (rng.one_in(2)) {
    // Splice: a prefix of a, a suffix of b.
    size_t ka = rng.below(a.ops.size() + 1);
    size_t kb = rng.below(b.ops.size() + 1);
    for (size_t i = 0; i < ka; i++) {
      new_a[i] = static_cast<long>(c.ops.size());
      c.ops.push_back(a.ops[i]);
    }
    for (size_t j = kb; j < b.ops.size(); j++) {
      new_b[j] = static_cast<long>(c.ops.size());
      c.ops.push_back(b.ops[j]);
    }
    for (size_t k = 0; k < ka; k++) renumber_ref(&c.ops[k], new_a);
    for (size_t k = ka; k < c.ops.size(); k++) renumber_ref(&c.ops[k], new_b);
  } else {
    // Interleave: run the two streams side by side (often on different CPUs).
    size_t i = 0, j = 0;
    std::vector<bool> from_a;
    while (i < a.ops.size() || j < b.ops.size()) {
      bool take_a = j >= b.ops.size() || (i < a.ops.size() && rng.one_in(2));
      (take_a ? new_a[i] : new_b[j]) = static_cast<long>(c.ops.size());
      c.ops.push_back(take_a ? a.ops[i++] : b.ops[j++]);
      from_a.push_back(take_a);
    }
    for (size_t k = 0; k < c.ops.size(); k++) renumber_ref(&c.ops[k], from_a[k] ? new_a : new_b);
  }
  if (c.ops.size() > max_ops) c.ops.resize(max_ops);
  canonicalize(&c);
  return c;
}

namespace {

enum class Focus { kAny, kSchedule };

size_t mutate_encoded(uint8_t* data, size_t size, size_t max_size, size_t min_ops,
                      uint64_t seed, Focus focus) {
  Rng rng(seed);
  if (max_size < kHeaderSize) return std::min(size, max_size);
  size_t max_ops = std::min(kMaxOps, (max_size - kHeaderSize) / kRecordSize);
  Program p = decode(std::span<const uint8_t>(data, size));
  while (p.ops.size() < std::min(min_ops, max_ops)) {
    Op op = random_op(p, rng);
    insert_ops(&p, rng.below(p.ops.size() + 1), std::span<const Op>(&op, 1));
  }
  // The schedule alone: always when asked (AFL++'s share), half the time for an input
  // that reached new interleaving pairs, and one time in eight for any input (LACE's
  // second phase for every input: an input stops reaching new pairs long before its
  // schedules are explored; session 12's zoo: the three ring and swap races' medians
  // with the custom mutator went from 175.3, 115.6 and 108.5 s to 10.3, 16.3, 59.1 s).
  if (focus == Focus::kSchedule || (is_schedule_seed(data, size) && rng.one_in(2)) ||
      rng.one_in(8))
    mutate_schedule(&p, rng, max_ops);
  else
    mutate_program(&p, rng, max_ops);
  std::vector<uint8_t> out = encode(p);
  memcpy(data, out.data(), out.size());
  return out.size();
}

}  // namespace

size_t mutate_bytes(uint8_t* data, size_t size, size_t max_size, uint64_t seed) {
  return mutate_encoded(data, size, max_size, 0, seed, Focus::kAny);
}

size_t grow_bytes(uint8_t* data, size_t size, size_t max_size, size_t min_ops, uint64_t seed) {
  return mutate_encoded(data, size, max_size, min_ops, seed, Focus::kAny);
}

size_t mutate_schedule_bytes(uint8_t* data, size_t size, size_t max_size, uint64_t seed) {
  return mutate_encoded(data, size, max_size, 0, seed, Focus::kSchedule);
}

size_t crossover_bytes(const uint8_t* d1, size_t s1, const uint8_t* d2, size_t s2, uint8_t* out,
                       size_t max_out, uint64_t seed) {
  Rng rng(seed);
  if (max_out < kHeaderSize) return 0;
  size_t max_ops = std::min(kMaxOps, (max_out - kHeaderSize) / kRecordSize);
  Program c = crossover_programs(decode(std::span<const uint8_t>(d1, s1)),
                                 decode(std::span<const uint8_t>(d2, s2)), rng, max_ops);
  std::vector<uint8_t> bytes = encode(c);
  memcpy(out, bytes.data(), bytes.size());
  return bytes.size();
}

}  // namespace slabfuzz
