// fiber.cc - stacks and sanitizer announcements for the deterministic runtime's
// fibers (see fiber.h). The register switch itself is fiber_switch_x86_64.S.
#include "allocator/kenv/fiber.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "allocator/kenv/kenv.h"

#ifdef SLABFUZZ_HAVE_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef SLABFUZZ_HAVE_TSAN
#include <sanitizer/tsan_interface.h>
#endif

extern "C" void slabfuzz_fiber_switch(void** save_sp, void* load_sp);
extern "C" void slabfuzz_fiber_start();

namespace kenv {

namespace {
// Stacks are kept for reuse (a fuzzer creates a few fibers per input, thousands of
// times a second); per OS thread, per size.
struct StackPool {
  size_t size = 0;
  std::vector<char*> free;
  ~StackPool() {
    for (char* s : free) munmap(s, size + 4096);
  }
};
thread_local StackPool t_stacks;
}  // namespace

Fiber::Fiber(Entry entry, void* arg, size_t stack_size)
    : entry_(entry), arg_(arg), stack_size_(stack_size) {
  // Stacks come from mmap with a guard page below, so an overflow faults at once.
  const size_t guard = 4096;
  if (t_stacks.size == stack_size && !t_stacks.free.empty()) {
    stack_ = t_stacks.free.back();
    t_stacks.free.pop_back();
  } else {
    void* mem = mmap(nullptr, stack_size + guard, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) {
      fprintf(stderr, "slabfuzz: fiber: cannot map a %zu-byte stack\n", stack_size);
      abort();
    }
    mprotect(mem, guard, PROT_NONE);
    stack_ = static_cast<char*>(mem);
  }
  uintptr_t top = reinterpret_cast<uintptr_t>(stack_ + guard + stack_size) & ~uintptr_t{15};
  auto* frame = reinterpret_cast<uint64_t*>(top - 16 - 8 * 8);
  const uint32_t mxcsr = 0x1F80;
  const uint16_t fpucw = 0x037F;
  memcpy(reinterpret_cast<char*>(&frame[0]), &mxcsr, 4);
  memcpy(reinterpret_cast<char*>(&frame[0]) + 4, &fpucw, 2);
  frame[1] = 0;                                         // r15
  frame[2] = 0;                                         // r14
  frame[3] = reinterpret_cast<uint64_t>(&Fiber::Trampoline);  // r13
  frame[4] = reinterpret_cast<uint64_t>(this);          // r12
  frame[5] = 0;                                         // rbx
  frame[6] = 0;                                         // rbp
  frame[7] = reinterpret_cast<uint64_t>(&slabfuzz_fiber_start);  // return address
  sp_ = frame;
  asan_bottom_ = stack_ + guard;
  asan_size_ = stack_size;
#ifdef SLABFUZZ_HAVE_TSAN
  tsan_fiber_ = __tsan_create_fiber(0);
#endif
}

std::unique_ptr<Fiber> Fiber::Main() {
  std::unique_ptr<Fiber> f(new Fiber());
  f->main_ = true;
#ifdef SLABFUZZ_HAVE_TSAN
  f->tsan_fiber_ = __tsan_get_current_fiber();
#endif
  return f;
}

Fiber::~Fiber() {
  if (main_) return;
#ifdef SLABFUZZ_HAVE_TSAN
  if (tsan_fiber_) __tsan_destroy_fiber(tsan_fiber_);
#endif
  if (t_stacks.size != stack_size_) {
    for (char* st : t_stacks.free) munmap(st, t_stacks.size + 4096);
    t_stacks.free.clear();
    t_stacks.size = stack_size_;
  }
  if (t_stacks.free.size() < 64) {
#ifdef SLABFUZZ_HAVE_ASAN
    // The old frames' poisoning must not follow the stack into its next life. Frames
    // that returned unpoisoned themselves, and a throw unpoisons the whole stack
    // (ASan's __cxa_throw hook): what can be left is above the last saved stack
    // pointer (the frames of a fiber that ended, or was never started), plus the
    // red zone below it.
    char* bottom = stack_ + 4096;
    char* low = static_cast<char*>(sp_) - 256;
    if (low < bottom || low > bottom + stack_size_) low = bottom;
    // (The function: the macro is empty where this file is not instrumented.)
    __asan_unpoison_memory_region(low, static_cast<size_t>(bottom + stack_size_ - low));
#endif
    t_stacks.free.push_back(stack_);
  } else {
    munmap(stack_, stack_size_ + 4096);
  }
}

namespace {
// The OS thread's own context, learned when the first fiber starts.
thread_local Fiber* t_main = nullptr;
}  // namespace

void Fiber::Trampoline(void* self_arg) {
  Fiber* self = static_cast<Fiber*>(self_arg);
#ifdef SLABFUZZ_HAVE_ASAN
  const void* bottom = nullptr;
  size_t size = 0;
  __sanitizer_finish_switch_fiber(nullptr, &bottom, &size);
  if (t_main != nullptr && t_main->asan_bottom_ == nullptr) {
    t_main->asan_bottom_ = bottom;
    t_main->asan_size_ = size;
  }
#endif
  self->entry_(self->arg_);
  abort();  // entry functions never return
}

void Fiber::Switch(Fiber* from, Fiber* to) {
  if (from->main_) t_main = from;
#ifdef SLABFUZZ_HAVE_ASAN
  __sanitizer_start_switch_fiber(&from->asan_fake_stack_, to->asan_bottom_, to->asan_size_);
#endif
#ifdef SLABFUZZ_HAVE_TSAN
  __tsan_switch_to_fiber(to->tsan_fiber_, 0);
#endif
  slabfuzz_fiber_switch(&from->sp_, to->sp_);
#ifdef SLABFUZZ_HAVE_ASAN
  const void* bottom = nullptr;
  size_t size = 0;
  __sanitizer_finish_switch_fiber(from->asan_fake_stack_, &bottom, &size);
#endif
}

void Fiber::SwitchFinal(Fiber* from, Fiber* to) {
#ifdef SLABFUZZ_HAVE_ASAN
  __sanitizer_start_switch_fiber(nullptr, to->asan_bottom_, to->asan_size_);
#endif
#ifdef SLABFUZZ_HAVE_TSAN
  __tsan_switch_to_fiber(to->tsan_fiber_, 0);
#endif
  slabfuzz_fiber_switch(&from->sp_, to->sp_);
  abort();  // never resumed
}

}  // namespace kenv
