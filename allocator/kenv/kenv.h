/*
 * kenv.h - the simulated kernel as allocator code sees it.
 *
 * Allocator code is written against this header exactly as kernel code is written
 * against <sys/thread2.h>, <sys/spinlock2.h> and <vm/vm_page.h>: curthread/mycpu,
 * crit_enter()/crit_exit(), spinlocks, tsleep()/wakeup(), panic(), preempt_point().
 * Which runtime implements the slow paths (deterministic fibers for fuzzing, real
 * threads for stress) is chosen at link time by the Bazel target
 * (//allocator/kenv:det or //allocator/kenv:threaded); nothing here can tell.
 *
 * Invariants kept (and checked outside the perf build):
 *  - a thread in a critical section (td_critcount > 0) is never preempted by another
 *    thread of its CPU, never migrated and never interrupted; other CPUs run on;
 *  - a spinlock is held inside a critical section; it is never taken twice, and nobody
 *    sleeps while holding one or inside a critical section;
 *  - a thread holding a host lock (host_lock_guard) is not switched out;
 *  - panic() never returns.
 *
 * In the perf configuration (SLABFUZZ_PERF) preempt_point() and KKASSERT compile to
 * nothing.
 */
#ifndef SLABFUZZ_ALLOCATOR_KENV_KENV_H_
#define SLABFUZZ_ALLOCATOR_KENV_KENV_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <utility>

/* SLABFUZZ_HAVE_ASAN: the process runs under ASan, so that its interface (poisoning,
 * fiber switches, region queries) works, whether or not this file is instrumented
 * (the fuzzing builds leave the framework uninstrumented: SLABFUZZ_ASAN says so). */
#if defined(SLABFUZZ_ASAN)
#define SLABFUZZ_HAVE_ASAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(SLABFUZZ_HAVE_ASAN)
#define SLABFUZZ_HAVE_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define SLABFUZZ_HAVE_TSAN 1
#endif
#endif

/* Framework checks that walk every object are not what a fuzzer should learn from:
 * no coverage feedback (and no comparison tracing) inside them. */
#if defined(__clang__) && __clang_major__ >= 13
#define KENV_NO_COVERAGE __attribute__((no_sanitize("coverage")))
/* Invariant checkers and statistics readers, which walk allocator metadata (slab
 * headers, state maps, rings - never object memory) after every fuzzer operation:
 * neither coverage nor ASan checks on their loads, which would cost a fuzzer most
 * of its speed and find nothing the checkers themselves do not report. */
#define KENV_CHECKER __attribute__((no_sanitize("coverage", "address")))
#else
#define KENV_NO_COVERAGE
#define KENV_CHECKER
#endif

namespace kenv {

inline constexpr int MAXCPU = 16;

/* Per-CPU data (DragonFly's struct globaldata). */
struct globaldata {
	int gd_cpuid;
	/* Interrupts posted to this CPU and not yet run. */
	std::atomic<int> gd_ipending;
};

/* A kernel thread: a CPU's op stream, a daemon, or an interrupt. */
struct thread {
	globaldata *td_gd;
	int td_critcount;	/* crit_enter() nesting */
	int td_spincount;	/* spinlocks held */
	int td_intr;		/* nonzero: running as an interrupt */
	int td_nosleep;		/* nonzero: inside a no-block scope (M_NOWAIT path) */
	int td_kmdepth;		/* nesting of allocator slow paths (recursion bound) */
	int td_idle;		/* a daemon in its idle wait (tsleep_idle) */
	int td_stop;		/* the run is over: a daemon should return (kthread_should_stop) */
	int td_hostlock;	/* host locks held (host_lock_guard): no switch meanwhile */
	int td_nocount;		/* > 0: in the simulation's own bookkeeping (uncounted) */
	const char *td_name;
	const char *td_wmesg;	/* what it waits for, while it waits */
	const void *td_wchan;
	void *td_runtime;	/* runtime-private */
};

/* constinit: no dynamic initialization, so no TLS wrapper call on every access. */
extern constinit thread_local thread *curthread_tls;

inline thread *curthread() { return curthread_tls; }
inline globaldata *mycpu() { return curthread_tls->td_gd; }
inline int mycpuid() { return curthread_tls->td_gd->gd_cpuid; }
int ncpus();

/* ---- panic and assertions ---------------------------------------------------- */

[[noreturn]] void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A violated framework check: the crash title is "slabfuzz: <check>: <detail>". */
[[noreturn]] void check_failed(const char *check, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#ifdef SLABFUZZ_PERF
#define KKASSERT(exp) ((void)0)
#else
#define KKASSERT(exp)                                                              \
	((exp) ? (void)0                                                           \
	       : ::kenv::panic("assertion \"%s\" failed in %s at %s:%d", #exp,     \
			       __func__, __FILE__, __LINE__))
#endif

/* ---- runtime slow paths (implemented by the linked runtime) ------------------ */

void rt_preempt(void);			/* a preemption point, outside perf */
void rt_crit_exit_pending(void);	/* crit_exit() found work pending */
void rt_spin_contested(struct spinlock *spin);
void rt_spin_released(struct spinlock *spin);
/* Sleep on chan until wakeup(chan); returns 0, or EWOULDBLOCK after timo ticks
 * (threaded runtime only; the deterministic runtime treats timo as forever). */
int tsleep(const void *chan, const char *wmesg, int timo);
void wakeup(const void *chan);
void wakeup_one(const void *chan);
/* A daemon's idle wait, at the top of its loop, holding nothing: the only place a
 * runtime may end a daemon when the run is over. */
inline int tsleep_idle(const void *chan, const char *wmesg, int timo)
{
	thread *td = curthread_tls;
	td->td_idle = 1;
	int r = tsleep(chan, wmesg, timo);
	td->td_idle = 0;
	return r;
}
/* After its idle wait: the run is over and the daemon should return (the deterministic
 * runtime asks; a daemon that does not look runs its loop once more and is unwound in
 * its next idle wait). */
inline bool kthread_should_stop() { return curthread_tls->td_stop != 0; }
/* Counts a step of progress for the watchdog (threaded) and the trace (det). */
void rt_progress(void);

/* In a busy-wait for another CPU: let it run (deterministic runtime) or pause.
 * Every busy-wait loop must call it: under PCT a loop of plain preemption points
 * keeps the highest-priority thread running forever (reported as a livelock). */
void rt_spinwait(void);
inline void cpu_spinwait() { rt_spinwait(); }

/* ---- preemption points -------------------------------------------------------- */

/*
 * A place where a real kernel could be preempted, interrupted, or simply be
 * overtaken by another CPU. Allocator code sprinkles them where the real code has
 * windows (between reading per-CPU state and acting on it, around lock hand-offs).
 * Always inlined, as crit_exit() is: the runtime takes the return address of its slow
 * path as the site of a scheduling event (the fuzzers' scheduling coverage), which
 * must be the caller's call site, not one out-of-line copy shared by all of them.
 */
#define KENV_SITE_INLINE __attribute__((always_inline)) inline
KENV_SITE_INLINE void preempt_point()
{
#ifndef SLABFUZZ_PERF
	rt_preempt();
#endif
}

/* ---- critical sections -------------------------------------------------------- */

inline void crit_enter()
{
	thread *td = curthread_tls;
	++td->td_critcount;
	std::atomic_signal_fence(std::memory_order_seq_cst);
}

KENV_SITE_INLINE void crit_exit()
{
	thread *td = curthread_tls;
	std::atomic_signal_fence(std::memory_order_seq_cst);
#ifndef SLABFUZZ_PERF
	if (td->td_critcount <= 0)
		panic("crit_exit: not in a critical section (thread %s)", td->td_name);
#endif
	if (--td->td_critcount == 0 &&
	    td->td_gd->gd_ipending.load(std::memory_order_relaxed))
		rt_crit_exit_pending();
}

/* ---- spinlocks ------------------------------------------------------------------ */

struct spinlock {
	std::atomic<int> lock{0};
	const char *name = "spinlock";
	std::atomic<thread *> holder{nullptr};	/* for diagnostics only */
};

inline void spin_init(spinlock *spin, const char *name)
{
	spin->lock.store(0, std::memory_order_relaxed);
	spin->name = name;
	spin->holder.store(nullptr, std::memory_order_relaxed);
}

inline void spin_lock(spinlock *spin)
{
	thread *td = curthread_tls;
	crit_enter();
	++td->td_spincount;
	int expect = 0;
	if (!spin->lock.compare_exchange_strong(expect, 1, std::memory_order_acquire))
		rt_spin_contested(spin);
	spin->holder.store(td, std::memory_order_relaxed);
}

inline void spin_unlock(spinlock *spin)
{
	thread *td = curthread_tls;
#ifndef SLABFUZZ_PERF
	if (spin->holder.load(std::memory_order_relaxed) != td)
		panic("spin_unlock: %s not held by %s", spin->name, td->td_name);
#endif
	spin->holder.store(nullptr, std::memory_order_relaxed);
	spin->lock.store(0, std::memory_order_release);
	rt_spin_released(spin);
	--td->td_spincount;
	crit_exit();
}

/* ---- the simulation's bookkeeping inside kernel code ---------------------------- */

/*
 * A scope of host bookkeeping in code built with the access callbacks (a registry the
 * reset walks, a verification map): its loads and stores are not the kernel's and are
 * not counted as shared accesses, so they neither place switch points nor feed
 * interleaving coverage. Needed for more than KENV_NO_COVERAGE gives: the containers'
 * out-of-line code (a vector's reallocation, a hash map's nodes) is instrumented where
 * it is instantiated, and what it touches depends on the host heap and on what earlier
 * runs of the process left there, not on the program.
 */
class uncounted {
public:
	uncounted() : td_(curthread_tls)
	{
		if (td_ != nullptr)
			td_->td_nocount++;
	}
	~uncounted()
	{
		if (td_ != nullptr)
			td_->td_nocount--;
	}
	uncounted(const uncounted &) = delete;
	uncounted &operator=(const uncounted &) = delete;

private:
	thread *td_;
};

/*
 * Host memory for kernel structures the allocators keep outside the page source (zalloc's
 * chunk descriptors and zinit()'s zones, kmalloc's large-allocation descriptors,
 * objcache's caches and magazines): recycled, per size, last freed first, and never
 * given back to the host heap. So a structure made during a run reuses only what this
 * run freed, in the order it freed it, never memory the host heap hands out after some
 * earlier run's history; what counts as a shared access (memory stored during the run)
 * depends on the program alone. Thread-safe; under ASan a freed block stays poisoned.
 */
void *host_obj_alloc(size_t size);
void host_obj_free(void *p, size_t size);

template <class T, class... Args>
T *host_new(Args &&...args)
{
	return new (host_obj_alloc(sizeof(T))) T(std::forward<Args>(args)...);
}

template <class T>
void host_delete(T *p)
{
	if (p == nullptr)
		return;
	p->~T();
	host_obj_free(p, sizeof(T));
}

/* ---- host locks --------------------------------------------------------------------- */

/*
 * A lock of the simulation's own bookkeeping (a registry of zones, of chunk
 * descriptors), not of the kernel being simulated: a std::mutex, which the threaded
 * runtime's threads contend for as they are; the deterministic runtime runs its kernel
 * threads as fibers of one host thread, so it must not switch to another while one
 * holds it (a second lock() of the same host thread would never return). It does not:
 * a switch that falls due at a shared access inside is taken at the first access after
 * it. No preemption point, wait or spinlock inside. Outside a kernel thread (set-up,
 * reset) a plain lock.
 */
class host_lock_guard {
public:
	explicit host_lock_guard(std::mutex &m) : m_(m), td_(curthread_tls)
	{
		if (td_ != nullptr)
			td_->td_hostlock++;
		m_.lock();
	}
	~host_lock_guard()
	{
		m_.unlock();
		if (td_ != nullptr)
			td_->td_hostlock--;
	}
	host_lock_guard(const host_lock_guard &) = delete;
	host_lock_guard &operator=(const host_lock_guard &) = delete;

private:
	std::mutex &m_;
	thread *td_;
};

/* ---- counters ------------------------------------------------------------------------ */

/*
 * A number with one writer at a time (the CPU that owns it, inside a critical section,
 * or the holder of the lock that guards it) that anyone may read at any time: relaxed
 * loads and stores, no read-modify-write (so as cheap as a plain integer), and no data
 * race for a sanitizer to report when a statistics reader looks while it changes.
 */
/* Always inlined: the checkers (KENV_CHECKER, built without ASan's checks) read them,
 * and a call into the instrumented copy cost a statistics read more than the read. */
#define KENV_COUNTER_INLINE __attribute__((always_inline))
template <typename T>
struct wcounter {
	std::atomic<T> v{0};
	KENV_COUNTER_INLINE T get() const { return v.load(std::memory_order_relaxed); }
	KENV_COUNTER_INLINE operator T() const { return get(); }
	void set(T x) { v.store(x, std::memory_order_relaxed); }
	wcounter &operator=(T x) { set(x); return *this; }
	wcounter &operator+=(T d) { set(get() + d); return *this; }
	wcounter &operator-=(T d) { set(get() - d); return *this; }
	wcounter &operator++() { return *this += 1; }
	wcounter &operator--() { return *this -= 1; }
	void operator++(int) { *this += 1; }
	void operator--(int) { *this -= 1; }
	void inc() { *this += 1; }
};

/* ---- boot phases ------------------------------------------------------------------ */

enum class boot_phase : int {
	EARLY = 0,	/* no page source: the VM is not up */
	VM_READY = 1,	/* pages can be had; one CPU */
	SMP = 2,	/* the other CPUs run */
	RUNNING = 3,	/* init has started; pageout and poller run */
};

boot_phase current_boot_phase();
void boot_advance(boot_phase to);	/* drivers only; never goes back */
const char *boot_phase_name(boot_phase p);

}  // namespace kenv

#endif  // SLABFUZZ_ALLOCATOR_KENV_KENV_H_
