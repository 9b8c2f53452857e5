// fiber.h - cooperative execution contexts for the deterministic runtime.
//
// A Fiber owns a stack and an entry function. switch_to() suspends the calling context
// and resumes another one on the same OS thread. Every switch is announced to ASan
// (__sanitizer_start/finish_switch_fiber) and TSan (__tsan_switch_to_fiber), so both
// follow the stacks and the happens-before order exactly as the fibers run.
//
// Invariants: a fiber's entry function never returns (it switches away for the last
// time); a fiber is destroyed only while suspended or never started; the "main"
// context (the OS thread's own stack) is represented by a Fiber built with
// Fiber::Main().
#ifndef SLABFUZZ_ALLOCATOR_KENV_FIBER_H_
#define SLABFUZZ_ALLOCATOR_KENV_FIBER_H_

#include <cstddef>
#include <memory>

namespace kenv {

class Fiber {
 public:
  using Entry = void (*)(void* arg);
  // A fiber with its own stack that starts in entry(arg).
  Fiber(Entry entry, void* arg, size_t stack_size);
  // The calling OS thread's own context.
  static std::unique_ptr<Fiber> Main();
  ~Fiber();
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  // Suspends `from` (the running context) and resumes `to`.
  static void Switch(Fiber* from, Fiber* to);
  // Like Switch, for a fiber that will never be resumed (lets ASan forget its stack).
  // It never returns, but is not declared [[noreturn]]: ASan would precede every call
  // with __asan_handle_no_return(), which unpoisons the whole stack (and asks the
  // kernel for the signal stack) each time a fiber ends; ~Fiber() unpoisons just the
  // frames the fiber still had.
  static void SwitchFinal(Fiber* from, Fiber* to);

  // The fiber's own stack, [stack_lo(), stack_lo() + stack_bytes()) with its guard page
  // (nothing for the main context): the runtime tells a thread's own locals from memory
  // another thread can reach by it.
  const char* stack_lo() const { return stack_; }
  size_t stack_bytes() const { return stack_ == nullptr ? 0 : stack_size_ + 4096; }

 private:
  Fiber() = default;
  static void Trampoline(void* self);
  Entry entry_ = nullptr;
  void* arg_ = nullptr;
  void* sp_ = nullptr;
  char* stack_ = nullptr;
  size_t stack_size_ = 0;
  bool main_ = false;
  [[maybe_unused]] void* tsan_fiber_ = nullptr;
  [[maybe_unused]] void* asan_fake_stack_ = nullptr;
  const void* asan_bottom_ = nullptr;
  size_t asan_size_ = 0;
};

}  // namespace kenv

#endif  // SLABFUZZ_ALLOCATOR_KENV_FIBER_H_
