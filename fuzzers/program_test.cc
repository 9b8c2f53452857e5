// program_test.cc - every byte string decodes; encode/decode and the text form round
// trip; malformed text is rejected with the line; the mutator never produces a
// program that does not decode to itself, nor one over the size limit.
#include "fuzzers/program.h"

#include <cstring>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "fuzzers/mutator.h"
#include "gtest/gtest.h"

namespace slabfuzz {
namespace {

std::vector<uint8_t> RandomBytes(Rng& rng, size_t max) {
  std::vector<uint8_t> b(rng.below(max + 1));
  for (uint8_t& x : b) x = static_cast<uint8_t>(rng.next());
  return b;
}

TEST(Program, EveryByteStringDecodesAndRoundTrips) {
  Rng rng(1);
  for (int i = 0; i < 20000; i++) {
    std::vector<uint8_t> bytes = RandomBytes(rng, 600);
    Program p = decode(bytes);
    ASSERT_LE(p.ops.size(), kMaxOps);
    std::vector<uint8_t> canon = encode(p);
    EXPECT_EQ(decode(canon), p);
    EXPECT_EQ(encode(decode(canon)), canon);
    for (const Op& op : p.ops) {
      ASSERT_LT(op.cpu, p.header.ncpus);
      ASSERT_LT(static_cast<int>(op.code), static_cast<int>(OpCode::kNumOps));
    }
  }
}

TEST(Program, TextFormRoundTrips) {
  Rng rng(2);
  for (int i = 0; i < 3000; i++) {
    Program p = random_program(rng, 40);
    std::string text = to_text(p);
    std::string err;
    auto back = parse_text(text, &err);
    ASSERT_TRUE(back.has_value()) << err << "\n" << text;
    EXPECT_EQ(*back, p) << text;
  }
}

TEST(Program, HandWrittenTextParses) {
  std::string err;
  auto p = parse_text(
      "# a comment\n"
      "config mode=naive cpus=3 boot=early zones=64,4096 seed=7\n"
      "cpu2 alloc zone=4 flags=M_NOWAIT|M_ZERO   # trailing comment\n"
      "cpu0 interrupt target=1 count=3 zone=0\n"
      "cpu1 zone_create zone=1 size=640\n",
      &err);
  ASSERT_TRUE(p.has_value()) << err;
  EXPECT_EQ(p->header.ncpus, 3);
  EXPECT_EQ(p->header.vm_mode, 0);
  EXPECT_EQ(p->header.boot, BootMode::kEarly);
  EXPECT_EQ(p->header.nzones, 2);
  EXPECT_EQ(size_class(p->header.zone_size_class(1)), 4096u);
  ASSERT_EQ(p->ops.size(), 3u);
  EXPECT_EQ(p->ops[0].code, OpCode::kAlloc);
  EXPECT_EQ(p->ops[0].cpu, 2);
  EXPECT_EQ(std::string(flag_set_name(p->ops[0].b)), "M_NOWAIT|M_ZERO");
  EXPECT_EQ(size_class(p->ops[2].b), 640u);
}

TEST(Program, MalformedTextIsRejectedWithItsLine) {
  struct Case {
    const char* text;
    const char* error;
  } cases[] = {
      {"cpu0 alloc zone=0\n", "line 1: the config line must come first"},
      {"config cpus=2\ncpu5 alloc zone=0\n", "line 2: bad cpu 'cpu5' (config cpus=2)"},
      {"config\ncpu0 frobnicate\n", "line 2: unknown operation 'frobnicate'"},
      {"config\ncpu0 alloc zone=0 flags=M_SOMETIMES\n", "line 2: unknown flags 'M_SOMETIMES'"},
      {"config\ncpu0 alloc zone=99\n", "line 2: value out of range in alloc"},
      {"config\ncpu0 free pages=3\n", "line 2: operation free takes no pages=3"},
      {"config mode=lazy\n", "line 1: mode must be naive or reserved"},
      {"config\ncpu0 alloc zone=0\ncpu0 free obj=1\n",
       "line 3: bad reference '1' for obj (@N: the operation on line N of the operations, "
       "from 0, that allocated it)"},
      {"config\ncpu0 alloc zone=0\ncpu0 free obj=@1\n",
       "line 3: obj=@1 names no earlier operation that allocates"},
      {"config\ncpu0 alloc zone=0\ncpu0 poll\ncpu0 free obj=@1\n",
       "line 4: obj=@1 names no earlier operation that allocates (operation 1 is poll)"},
      {"", "line 0: no config line"},
  };
  for (const Case& c : cases) {
    std::string err;
    EXPECT_FALSE(parse_text(c.text, &err).has_value()) << c.text;
    EXPECT_EQ(err, c.error) << c.text;
  }
}

Program MustParse(const std::string& text) {
  std::string err;
  auto p = parse_text(text, &err);
  EXPECT_TRUE(p.has_value()) << err << "\n" << text;
  return p.value_or(Program{});
}

std::string OpsText(const Program& p) {
  std::string t = to_text(p);
  return t.substr(t.find('\n') + 1);
}

// A reference names the operation that allocated its object, by index; every edit of
// program.h keeps it naming that operation.
TEST(Program, ReferencesFollowTheirOperationsThroughEdits) {
  Program p = MustParse(
      "config cpus=2 zones=64,256\n"
      "cpu0 alloc zone=TEST0\n"         // 0
      "cpu1 reserve_chain zone=TEST1 count=3\n"  // 1
      "cpu0 poll\n"                     // 2
      "cpu1 free obj=@1\n"              // 3
      "cpu0 remote_free obj=@0\n");     // 4
  Op unrelated;
  unrelated.code = OpCode::kAlloc;
  unrelated.a = 4;
  Program q = p;
  insert_ops(&q, 1, std::span<const Op>(&unrelated, 1));
  EXPECT_EQ(OpsText(q),
            "cpu0 alloc zone=TEST0 flags=M_WAITOK\n"
            "cpu0 alloc zone=TEST1 flags=M_WAITOK\n"
            "cpu1 reserve_chain zone=TEST1 count=3\n"
            "cpu0 poll\n"
            "cpu1 free obj=@2\n"
            "cpu0 remote_free obj=@0\n");
  erase_ops(&q, 1, 1);
  EXPECT_EQ(q, p);
  // Removing the operation a reference names takes it to the nearest earlier allocation.
  q = p;
  erase_ops(&q, 1, 1);
  EXPECT_EQ(OpsText(q),
            "cpu0 alloc zone=TEST0 flags=M_WAITOK\n"
            "cpu0 poll\n"
            "cpu1 free obj=@0\n"
            "cpu0 remote_free obj=@0\n");
  // Moving the allocation after its use: the use names the nearest earlier one.
  q = p;
  move_op(&q, 0, 2);
  EXPECT_EQ(OpsText(q),
            "cpu1 reserve_chain zone=TEST1 count=3\n"
            "cpu0 poll\n"
            "cpu0 alloc zone=TEST0 flags=M_WAITOK\n"
            "cpu1 free obj=@0\n"
            "cpu0 remote_free obj=@2\n");
  q = p;
  swap_ops(&q, 3, 4);
  EXPECT_EQ(OpsText(q),
            "cpu0 alloc zone=TEST0 flags=M_WAITOK\n"
            "cpu1 reserve_chain zone=TEST1 count=3\n"
            "cpu0 poll\n"
            "cpu0 remote_free obj=@0\n"
            "cpu1 free obj=@1\n");
}

// In bytes any value is a reference: taken to the nearest earlier allocating operation.
TEST(Program, ReferencesAreCanonicalInBytes) {
  Program p = MustParse("config\ncpu0 alloc zone=0\ncpu0 poll\ncpu0 alloc zone=1\n"
                        "cpu0 vm_unmap\ncpu0 free obj=@2\n");
  for (uint32_t raw : {2u, 3u, 4u, 5u, 200u, 0xffffffffu}) {
    Program q = p;
    q.ops[4].c = raw;
    canonicalize(&q);
    EXPECT_EQ(q.ops[4].c, 2u) << raw;
  }
  Program q = p;
  q.ops[4].c = 1;
  canonicalize(&q);
  EXPECT_EQ(q.ops[4].c, 0u);
  Program first = MustParse("config\ncpu0 free obj=@0\n");  // nothing before it: @0
  EXPECT_EQ(first.ops[0].c, 0u);
}

TEST(Mutator, OutputAlwaysDecodesToItselfAndFits) {
  Rng rng(3);
  for (int i = 0; i < 20000; i++) {
    std::vector<uint8_t> buf = RandomBytes(rng, 400);
    size_t max = kHeaderSize + kRecordSize * (1 + rng.below(80));
    buf.resize(std::max(buf.size(), max));
    size_t in = std::min<size_t>(rng.below(400), max);
    size_t n = mutate_bytes(buf.data(), in, max, rng.next());
    ASSERT_LE(n, max);
    std::vector<uint8_t> out(buf.begin(), buf.begin() + static_cast<long>(n));
    EXPECT_EQ(encode(decode(out)), out);
  }
}

// AFL++'s mutator grows short programs first: at least min_ops operations (less the
// few a following mutation may delete), never past max_size, always canonical.
TEST(Mutator, GrowReachesTheMinimumAndFits) {
  Rng rng(5);
  for (int i = 0; i < 5000; i++) {
    size_t max = kHeaderSize + kRecordSize * (1 + rng.below(80));
    std::vector<uint8_t> buf = RandomBytes(rng, 40);
    buf.resize(std::max(buf.size(), max));
    size_t in = std::min<size_t>(rng.below(40), max);
    size_t n = grow_bytes(buf.data(), in, max, 16, rng.next());
    ASSERT_LE(n, max);
    std::vector<uint8_t> out(buf.begin(), buf.begin() + static_cast<long>(n));
    EXPECT_EQ(encode(decode(out)), out);
    size_t want = std::min<size_t>(16, (max - kHeaderSize) / kRecordSize);
    EXPECT_GE(decode(out).ops.size() + 3, want) << "max " << max;
  }
}

TEST(Mutator, CrossoverAlwaysDecodesAndFits) {
  Rng rng(4);
  for (int i = 0; i < 5000; i++) {
    std::vector<uint8_t> a = encode(random_program(rng, 30));
    std::vector<uint8_t> b = encode(random_program(rng, 30));
    std::vector<uint8_t> out(kHeaderSize + kRecordSize * 40);
    size_t n = crossover_bytes(a.data(), a.size(), b.data(), b.size(), out.data(), out.size(),
                               rng.next());
    ASSERT_LE(n, out.size());
    out.resize(n);
    EXPECT_EQ(encode(decode(out)), out);
  }
}

TEST(Mutator, ReachesEveryOperation) {
  Rng rng(5);
  Program p;
  std::vector<int> seen(static_cast<int>(OpCode::kNumOps));
  for (int i = 0; i < 5000; i++) {
    mutate_program(&p, rng, 64);
    for (const Op& op : p.ops) seen[static_cast<int>(op.code)]++;
  }
  for (int i = 0; i < static_cast<int>(OpCode::kNumOps); i++)
    EXPECT_GT(seen[i], 0) << op_name(static_cast<OpCode>(i));
}

}  // namespace
}  // namespace slabfuzz

namespace slabfuzz {
namespace {

TEST(Program, ScheduleAtAccessesInTextAndBytes) {
  std::string err;
  auto p = parse_text(
      "config backend=kmalloc_obj mode=reserved cpus=2 budget=16 boot_slabs=1 reserve=1 "
      "boot=early seed=0x5 depth=2 zones=64 races=5\n"
      "cpu1 preempt after=3 accesses=17\n",
      &err);
  ASSERT_TRUE(p) << err;
  EXPECT_EQ(p->header.races, 5);
  EXPECT_EQ(p->header.boot, BootMode::kEarly);
  ASSERT_EQ(p->ops.size(), 1u);
  EXPECT_EQ(p->ops[0].b, 3);
  EXPECT_EQ(p->ops[0].c, 17u);
  EXPECT_EQ(decode(encode(*p)), *p);
  EXPECT_NE(to_text(*p).find(" races=5"), std::string::npos);
  EXPECT_NE(to_text(*p).find("accesses=17"), std::string::npos);
  // A program without them reads as before: no change point at an access.
  auto old = parse_text("config cpus=1 seed=0x1 depth=3\ncpu0 preempt after=1\n", &err);
  ASSERT_TRUE(old) << err;
  EXPECT_EQ(old->header.races, 0);
  EXPECT_EQ(old->ops[0].c, 0u);
  EXPECT_EQ(to_text(*old).find("races="), std::string::npos);
  EXPECT_FALSE(parse_text("config races=8\n", &err));
  EXPECT_FALSE(parse_text("config cpus=1\ncpu0 preempt after=1 accesses=256\n", &err));
}

// What the CPUs do, without the schedule: the operations but preempt and the timers, each
// reference renumbered to the operation's place among them.
std::vector<Op> Work(const Program& p) {
  std::vector<Op> w;
  std::vector<uint32_t> work_index;
  for (const Op& op : p.ops) {
    work_index.push_back(static_cast<uint32_t>(w.size()));
    if (!is_schedule_op(op)) w.push_back(op);
  }
  for (Op& op : w)
    if (has_ref(op)) op.c = work_index[op.c];
  return w;
}

TEST(Mutator, ScheduleMutationKeepsTheWork) {
  Rng rng(21);
  int changed = 0;
  for (int i = 0; i < 3000; i++) {
    Program p = random_program(rng, 40);
    Program q = p;
    mutate_schedule(&q, rng, 64);
    EXPECT_EQ(Work(q), Work(p)) << to_text(p) << "----\n" << to_text(q);
    Header a = p.header, b = q.header;
    a.seed = b.seed = 0;
    a.pct_depth = b.pct_depth = 0;
    a.races = b.races = 0;
    a.tick = b.tick = 0;
    EXPECT_EQ(a, b);
    EXPECT_EQ(decode(encode(q)), q);
    changed += !(q == p);
  }
  EXPECT_GT(changed, 2000);
}

TEST(Mutator, RemembersScheduleSeeds) {
  std::vector<uint8_t> a = encode(random_program(*std::make_unique<Rng>(5), 20));
  std::vector<uint8_t> b = a;
  b.back() ^= 1;
  EXPECT_FALSE(is_schedule_seed(a.data(), a.size()));
  note_schedule_seed(a.data(), a.size());
  EXPECT_TRUE(is_schedule_seed(a.data(), a.size()));
  EXPECT_FALSE(is_schedule_seed(b.data(), b.size()));
}

// ops.h's table is whole: every operation has a distinct name, named fields exactly
// where it has fields (distinct within it), ranges that hold 0, a weight, and a
// dictionary record for CPU 0 and 1; its text form round-trips whatever the values.
TEST(Ops, EveryOperationIsDeclaredWhole) {
  std::string dict = dictionary_text();
  Rng rng(9);
  for (size_t i = 0; i < std::size(kOpSpecs); i++) {
    const OpSpec& s = kOpSpecs[i];
    SCOPED_TRACE(s.name ? s.name : "(null)");
    ASSERT_NE(s.name, nullptr);
    EXPECT_GT(strlen(s.name), 0u);
    EXPECT_NE(s.doc, nullptr);
    EXPECT_GT(s.weight, 0);
    for (size_t j = 0; j < i; j++) EXPECT_STRNE(kOpSpecs[j].name, s.name);
    const Field* f[3] = {&s.a, &s.b, &s.c};
    for (int k = 0; k < 3; k++) {
      EXPECT_EQ(f[k]->name == nullptr, f[k]->range == Range::kNone) << k;
      if (f[k]->range == Range::kBelow) EXPECT_GT(f[k]->n, 0u) << k;
      for (int l = 0; l < k; l++)
        if (f[k]->name && f[l]->name) EXPECT_STRNE(f[k]->name, f[l]->name);
    }
    EXPECT_NE(dict.find(std::string(s.name) + "_cpu0=\""), std::string::npos);
    EXPECT_NE(dict.find(std::string(s.name) + "_cpu1=\""), std::string::npos);
    Program p;
    p.header.ncpus = 2;
    Op zero;
    zero.code = static_cast<OpCode>(i);
    p.ops.push_back(zero);
    Program canon = p;
    canonicalize(&canon);
    EXPECT_EQ(canon, p) << "a zeroed field is out of range";
    for (int n = 0; n < 50; n++) {
      Op op = zero;
      op.cpu = static_cast<uint8_t>(rng.below(2));
      op.a = static_cast<uint8_t>(rng.next());
      op.b = static_cast<uint8_t>(rng.next());
      op.c = static_cast<uint32_t>(rng.next());
      p.ops = {op};
      canonicalize(&p);
      std::string err;
      auto back = parse_text(to_text(p), &err);
      ASSERT_TRUE(back.has_value()) << err << "\n" << to_text(p);
      EXPECT_EQ(*back, p) << to_text(p);
    }
  }
}

}  // namespace
}  // namespace slabfuzz
