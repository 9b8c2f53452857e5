// oracle_test.cc - the oracle's object checks on plain memory, inside a deterministic
// run (a failed check ends the run with its title): a byte changed anywhere in a live
// object is reported at its offset, an intact object passes, M_ZERO is checked, and
// overlapping objects are refused.
#include "fuzzers/oracle.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "allocator/backend/backend.h"
#include "allocator/kenv/kenv.h"
#include "allocator/kenv/malloc.h"
#include "allocator/kenv/runtime.h"
#include "gtest/gtest.h"

#ifdef SLABFUZZ_HAVE_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace slabfuzz {
namespace {

// Runs fn with an oracle whose zone 0 holds objects of `size` bytes; returns the
// run's title ("" if it ended well).
template <class Fn>
std::string RunOracle(size_t size, Fn fn) {
  std::unique_ptr<Backend> b = make_kmalloc_obj_backend();  // not called: plain memory
  Oracle oracle(*b);
  oracle.set_zone(0, nullptr, size, "TEST");
  kenv::RuntimeConfig c;
  c.ncpus = 1;
  kenv::Runtime rt(c);
  rt.spawn(0, "t", [&] { fn(oracle); });
  kenv::Outcome o = rt.run();
  return o.ok() ? "" : o.title;
}

struct Buf {
  explicit Buf(size_t n) : p(static_cast<unsigned char*>(aligned_alloc(64, (n + 63) & ~size_t{63}))) {}
  ~Buf() { free(p); }
  unsigned char* p;
};

TEST(Oracle, IntactObjectsPass) {
  for (size_t size : {16, 100, 4096, 16384}) {
    size_t stride = (size + 63) & ~size_t{63};
    Buf m(2 * stride);
    EXPECT_EQ(RunOracle(size, [&](Oracle& o) {
                o.on_alloc(0, m.p, M_WAITOK, 0);
                o.on_alloc(0, m.p + stride, M_WAITOK, 0);
                o.take(1);
                o.take(0);
              }),
              "")
        << size;
  }
}

TEST(Oracle, AChangedByteIsReportedAtItsOffset) {
  struct Case {
    size_t size, offset;
    const char* where;
  } cases[] = {{16, 0, "offset 0"},       {100, 99, "offset 99"},   {100, 93, "offset 88"},
               {16384, 0, "offset 0"},    {16384, 8001, "offset 8000"},
               {16384, 16383, "offset 16376"}, {4096, 70, "offset 64"}};
  for (const Case& k : cases) {
    Buf m(k.size);
    std::string title = RunOracle(k.size, [&](Oracle& o) {
      o.on_alloc(0, m.p, M_WAITOK, 0);
      m.p[k.offset] ^= 0x40;
      o.take(0);
    });
    EXPECT_EQ(title, "slabfuzz: corruption: zone TEST: live object ADDR changed at offset N")
        << k.size << "/" << k.offset;
    // The title drops numbers; the run's report keeps the offset.
    std::string report;
    {
      std::unique_ptr<Backend> b = make_kmalloc_obj_backend();
      Oracle oracle(*b);
      oracle.set_zone(0, nullptr, k.size, "TEST");
      kenv::RuntimeConfig c;
      kenv::Runtime rt(c);
      rt.spawn(0, "t", [&] {
        oracle.on_alloc(0, m.p, M_WAITOK, 0);
        m.p[k.offset] ^= 0x40;
        oracle.take(0);
      });
      report = rt.run().report;
    }
    EXPECT_NE(report.find(k.where), std::string::npos) << report;
  }
}

TEST(Oracle, MZeroObjectsMustBeZero) {
  Buf m(256);
  memset(m.p, 0, 256);
  m.p[200] = 1;
  EXPECT_EQ(RunOracle(256, [&](Oracle& o) { o.on_alloc(0, m.p, M_WAITOK | M_ZERO, 0); }),
            "slabfuzz: m-zero: zone TEST: M_ZERO object ADDR is not zeroed (byte N is N)");
  memset(m.p, 0, 256);
  EXPECT_EQ(RunOracle(256, [&](Oracle& o) {
              o.on_alloc(0, m.p, M_WAITOK | M_ZERO, 0);
              o.take(0);
            }),
            "");
}

TEST(Oracle, OverlappingObjectsAreRefused) {
  Buf m(256);
  EXPECT_EQ(RunOracle(128, [&](Oracle& o) {
              o.on_alloc(0, m.p, M_WAITOK, 0);
              o.on_alloc(0, m.p + 64, M_WAITOK, 0);
            }),
            "slabfuzz: overlap: zone TEST: object ADDR overlaps live object ADDR of zone TEST");
}

// The bulk loops run without ASan checks: a poisoned byte inside an object handed out
// (or freed) must still end in ASan's report.
TEST(Oracle, PoisonedBytesInAnObjectAreReportedByASan) {
#ifndef SLABFUZZ_HAVE_ASAN
  GTEST_SKIP() << "needs ASan";
#else
  for (size_t at : {0, 120, 248}) {
    Buf m(256);
    ASAN_POISON_MEMORY_REGION(m.p + at, 8);
    EXPECT_DEATH(RunOracle(256, [&](Oracle& o) { o.on_alloc(0, m.p, M_WAITOK, 0); }),
                 "use-after-poison");
    ASAN_UNPOISON_MEMORY_REGION(m.p + at, 8);
    EXPECT_DEATH(RunOracle(256,
                           [&](Oracle& o) {
                             o.on_alloc(0, m.p, M_WAITOK, 0);
                             ASAN_POISON_MEMORY_REGION(m.p + at, 8);
                             o.take(0);
                           }),
                 "use-after-poison");
  }
#endif
}

}  // namespace
}  // namespace slabfuzz
