// vm.cc - the VM consumers (see vm.h). Lists of what the Vm holds are guarded by one
// spinlock; no allocation or free happens while it is held.
#include "allocator/vm/vm.h"

#include <cstdlib>
#include <utility>

#include "allocator/kenv/malloc.h"
#include "allocator/kenv/page_source.h"
#include "allocator/kmalloc_obj/kmalloc_obj.h"

namespace slabfuzz {

namespace {

Vm* g_vm = nullptr;

// The kernel's static boot arrays: one static region, handed to the Vm alive (one at a
// time, like g_vm) and kept across runs, so that a fuzzer's millions of boots do not
// each map and unmap fresh memory. A request it cannot serve gets heap memory.
constexpr size_t kBootRegion = 8 * 128 * 1024;
alignas(128 * 1024) char g_boot_region[kBootRegion];
bool g_boot_region_busy = false;

struct BootAlloc {
  size_t used = 0;
  bool region = false;
  void* take(size_t align, size_t bytes) {
    if (!g_boot_region_busy || region) {
      size_t at = (used + align - 1) / align * align;
      if (at + bytes <= kBootRegion && align <= 128 * 1024) {
        g_boot_region_busy = region = true;
        used = at + bytes;
        return g_boot_region + at;
      }
    }
    return nullptr;
  }
};
constexpr int kPageoutRetries = 256;  // passes in a row that may fail before a sleep

bool hook_map(kmalloc_zone* zone, void*, int flags, void** cookie) {
  return g_vm != nullptr ? g_vm->map_slab(zone, flags, cookie) : true;
}

void hook_unmap(kmalloc_zone*, void*, void* cookie) {
  if (g_vm != nullptr) g_vm->unmap_slab(cookie);
}

const kmalloc_vm_hooks kHooks = {&hook_map, &hook_unmap};

}  // namespace

const char* vm_mode_name(VmMode m) {
  switch (m) {
    case VmMode::kNaive: return "naive";
    case VmMode::kReserved: return "reserved";
    case VmMode::kZalloc: return "zalloc";
  }
  return "?";
}

bool parse_vm_mode(std::string_view s, VmMode* m) {
  if (s == "naive") *m = VmMode::kNaive;
  else if (s == "reserved") *m = VmMode::kReserved;
  else if (s == "zalloc") *m = VmMode::kZalloc;
  else return false;
  return true;
}

Vm::Vm(Backend& backend, const VmOptions& opts) : b_(backend), o_(opts) {
  kenv::spin_init(&spin_, "vm");
  bool reserved = o_.mode == VmMode::kReserved;
  bool zalloc = o_.mode == VmMode::kZalloc;
  if (zalloc && b_.name() != "zalloc")
    kenv::panic("vm: zalloc mode needs the zalloc backend, not %.*s",
                static_cast<int>(b_.name().size()), b_.name().data());
  size_t pages = kenv::page_source_stats().budget;
  size_t pv_cap = o_.pv_entries > 0 ? static_cast<size_t>(o_.pv_entries) : 2 * pages;
  map_ = b_.zone_create({.name = "MAP ENTRY", .objsize = 128, .system = zalloc});
  pv_ = b_.zone_create(
      {.name = "PV ENTRY", .objsize = 64, .interrupt = zalloc, .nentries = pv_cap});
  swap_ = b_.zone_create(
      {.name = "SWAPMETA", .objsize = 256, .interrupt = zalloc, .nentries = pages});
  // (A): kmalloc_obj's boot slabs, or zalloc's zbootinit() arrays (the kernel's
  // static NPVINIT / MAX_MAPENT arrays: room for twice what the boot sequence needs).
  size_t g = b_.boot_granule();
  if ((reserved && g != 0 && o_.boot_slabs > 0) || zalloc) {
    auto round = [g](size_t bytes) { return (bytes + g - 1) / g * g; };
    size_t pv_bytes = zalloc ? round(2 * o_.bootstrap_pv * 64) : g * o_.boot_slabs;
    size_t map_bytes = zalloc ? round(2 * o_.bootstrap_map * 128) : g * o_.boot_slabs;
    BootAlloc pool;
    for (auto [z, bytes] : {std::pair{map_, map_bytes}, std::pair{pv_, pv_bytes}}) {
      void* mem = pool.take(g, bytes);  // the kernel's static arrays
      if (mem == nullptr) {
        mem = aligned_alloc(g, bytes);
        boot_mem_.push_back(mem);
      }
      b_.boot_memory(z, mem, bytes);
    }
    boot_region_ = pool.region;
  }
  g_vm = this;
  if (b_.name() == "kmalloc_obj") kmalloc_obj_set_vm_hooks(&kHooks);
  if (kenv::current_boot_phase() >= kenv::boot_phase::VM_READY) set_reserves();
}

Vm::~Vm() {
  if (g_vm == this) {
    g_vm = nullptr;
    kmalloc_obj_set_vm_hooks(nullptr);
  }
  // The boot memory (never given to the page source) is released with the Vm; after a
  // failed run the zones that used it are abandoned and reset, never touched again.
  for (void* m : boot_mem_) ::free(m);
  if (boot_region_) g_boot_region_busy = false;
}

void Vm::set_reserves() {
  if (o_.mode != VmMode::kReserved || !b_.has_reserve()) return;
  for (void* z : {map_, pv_, swap_}) b_.set_reserve(z, o_.reserve);
}

bool Vm::map_slab(void* zone, int flags, void** cookie) {
  *cookie = nullptr;
  if (zone == map_) return true;  // self-hosted: the entry lives in the slab
  // A kernel-internal allocation: may use the reserve; never waits if the caller can't.
  int f = (flags & (M_RNOWAIT | M_WAITOK | M_NULLOK)) | M_USE_RESERVE;
  if (f & M_RNOWAIT) f |= M_NULLOK;
  void* e = b_.alloc(map_, f);
  if (e == nullptr) return false;
  *cookie = e;
  stats_.slabs_mapped++;
  return true;
}

void Vm::unmap_slab(void* cookie) {
  if (cookie != nullptr) b_.free(map_, cookie);
}

void Vm::bootstrap() {
  // Kernel page tables and the kernel map need entries before any page can be had.
  kernel_entries_pv_.reserve(static_cast<size_t>(o_.bootstrap_pv));
  kernel_entries_map_.reserve(static_cast<size_t>(o_.bootstrap_map));
  for (int i = 0; i < o_.bootstrap_pv; i++) kernel_entries_pv_.push_back(b_.alloc(pv_, M_WAITOK));
  for (int i = 0; i < o_.bootstrap_map; i++)
    kernel_entries_map_.push_back(b_.alloc(map_, M_WAITOK));
  kenv::boot_advance(kenv::boot_phase::VM_READY);
  set_reserves();
}

bool Vm::fault(int flags) {
  void* page = kenv::vm_chunk_alloc(1, kenv::PAGE_SIZE, kenv::malloc_flags_tier(flags),
                                    kenv::malloc_flags_canwait(flags), "user page");
  if (page == nullptr) {
    stats_.fault_failures++;
    return false;
  }
  void* pv = b_.alloc(pv_, flags);
  if (pv == nullptr) {
    kenv::vm_chunk_free(page, 1);
    stats_.fault_failures++;
    return false;
  }
  void* me = nullptr;
  void* swapped_in = nullptr;
  kenv::spin_lock(&spin_);
  stats_.faults++;
  // The map grows with new mappings only: a page brought back from swap is still
  // covered by the entry it had (paging out leaves the map as it was).
  bool grow = swapmeta_.empty() && ++fresh_faults_ % 8 == 0;
  pages_.push_back({page, pv});
  if (!swapmeta_.empty()) {  // a page comes back in: its block has one fewer out
    stats_.swapins++;
    if (--swapmeta_.back().pages == 0) {
      swapped_in = swapmeta_.back().swapmeta;
      swapmeta_.pop_back();
    }
  }
  kenv::spin_unlock(&spin_);
  if (swapped_in) b_.free(swap_, swapped_in);
  if (grow && (me = b_.alloc(map_, flags)) != nullptr) {
    kenv::spin_lock(&spin_);
    map_entries_.push_back(me);
    kenv::spin_unlock(&spin_);
  }
  return true;
}

bool Vm::unmap_one() {
  kenv::spin_lock(&spin_);
  if (pages_.empty()) {
    kenv::spin_unlock(&spin_);
    return false;
  }
  UserPage up = pages_.back();
  pages_.pop_back();
  void* me = nullptr;
  if (++stats_.unmaps % 8 == 0 && !map_entries_.empty()) {
    me = map_entries_.back();
    map_entries_.pop_back();
  }
  kenv::spin_unlock(&spin_);
  b_.free(pv_, up.pv);
  kenv::vm_chunk_free(up.page, 1);
  if (me) b_.free(map_, me);
  return true;
}

void Vm::anon_touch(size_t pages) { anon_drop(pages, true); }
void Vm::anon_free(size_t pages) { anon_drop(pages, false); }

void Vm::anon_drop(size_t pages, bool swapin) {
  std::vector<void*> back;
  kenv::spin_lock(&spin_);
  for (size_t n = 0; n < pages && !anon_swapmeta_.empty(); n += o_.pages_per_swapmeta) {
    back.push_back(anon_swapmeta_.back());
    anon_swapmeta_.pop_back();
    if (swapin) stats_.swapins++;
  }
  kenv::spin_unlock(&spin_);
  for (void* sm : back) b_.free(swap_, sm);
}

size_t Vm::mapped_pages() {
  kenv::spin_lock(&spin_);
  size_t n = pages_.size();
  kenv::spin_unlock(&spin_);
  return n;
}

int Vm::pageout(int npages) {
  int freed = 0;
  stats_.pageout_runs++;
  while (freed < npages) {
    std::vector<UserPage> batch;
    kenv::spin_lock(&spin_);
    while (!pages_.empty() && static_cast<int>(batch.size()) < o_.pages_per_swapmeta) {
      batch.push_back(pages_.front());
      pages_.erase(pages_.begin());
    }
    kenv::spin_unlock(&spin_);
    // Memory other consumers hold (driver pressure) is anonymous memory too: once the
    // user pages are gone, the pager takes it back, block by block, at the same price.
    bool anon = batch.empty() && kenv::page_source_stats().withheld > 0;
    if (batch.empty() && !anon) break;
    // The swap pager's metadata, made while memory is short: from the reserve, and
    // never asleep on pages, which only this daemon would free. A failure is retried
    // after the other CPUs ran (pageout_daemon), as FreeBSD's swap pager pauses and
    // retries its M_NOWAIT swblk allocation and DragonFly's vm_wait() of the pageout
    // daemon has a timeout. (M_SYSWAIT here let the daemon sleep in vmwait for good
    // when a reserve zone's spares were gone and a refill had failed: ci/fuzz, a
    // deadlock of reserved kmalloc_obj that zalloc, never blocking, survived.)
    void* sm = b_.alloc(swap_, M_NOWAIT);
    if (sm != nullptr && anon) {
      kenv::spin_lock(&spin_);
      anon_swapmeta_.push_back(sm);
      kenv::spin_unlock(&spin_);
      kenv::page_source_relief(o_.pages_per_swapmeta);
      freed += o_.pages_per_swapmeta;
      stats_.pages_paged_out += o_.pages_per_swapmeta;
      continue;
    }
    if (sm == nullptr) {
      kenv::spin_lock(&spin_);
      pages_.insert(pages_.begin(), batch.begin(), batch.end());
      stats_.swapmeta_failures++;
      kenv::spin_unlock(&spin_);
      break;
    }
    kenv::spin_lock(&spin_);
    swapmeta_.push_back({sm, static_cast<int>(batch.size())});
    kenv::spin_unlock(&spin_);
    for (const UserPage& up : batch) {
      b_.free(pv_, up.pv);
      kenv::vm_chunk_free(up.page, 1);
      freed++;
      stats_.pages_paged_out++;
    }
    kenv::preempt_point();
  }
  return freed;
}

void Vm::pageout_daemon(int* busy) {
  int retries = 0;
  for (;;) {
    uint64_t asked = kenv::vm_pageout_requests();
    uint64_t failures = stats_.swapmeta_failures;
    bool low = false;
    // Before VM_READY there is nothing to page out (and no page to get SWAPMETA from).
    while (kenv::current_boot_phase() >= kenv::boot_phase::VM_READY &&
           kenv::vm_free_count() < kenv::vm_free_target()) {
      low = true;
      if (busy) ++*busy;
      int n = pageout(8);
      if (busy) --*busy;
      if (n == 0) break;
    }
    // vm_lowmem: the allocators give back their free slabs (and, memory being back,
    // top their reserves up, without blocking).
    if (low) {
      if (busy) ++*busy;
      b_.poll();
      if (busy) --*busy;
    }
    // SWAPMETA could not be had (a transient failure): the real daemon's timer
    // brings it back a tick later; here, after letting the other CPUs run. A few
    // times only: a failure that lasts is the stall it is.
    if (low && stats_.swapmeta_failures != failures && retries < kPageoutRetries) {
      retries++;
      kenv::cpu_spinwait();
      continue;
    }
    if (stats_.swapmeta_failures == failures) retries = 0;
    // Asked again while working: look again rather than sleep through it.
    if (kenv::vm_pageout_requests() != asked) continue;
    kenv::tsleep_idle(kenv::vm_pageout_chan(), "pgdaemon", 0);
    if (kenv::kthread_should_stop()) return;
  }
}

void Vm::teardown() {
  while (unmap_one()) {
  }
  std::vector<void*> lists[4];
  kenv::spin_lock(&spin_);
  lists[0].swap(map_entries_);
  for (const Swapped& sw : swapmeta_) lists[1].push_back(sw.swapmeta);
  swapmeta_.clear();
  lists[1].insert(lists[1].end(), anon_swapmeta_.begin(), anon_swapmeta_.end());
  anon_swapmeta_.clear();
  lists[2].swap(kernel_entries_pv_);
  lists[3].swap(kernel_entries_map_);
  kenv::spin_unlock(&spin_);
  for (void* e : lists[0]) b_.free(map_, e);
  for (void* e : lists[1]) b_.free(swap_, e);
  for (void* e : lists[2]) b_.free(pv_, e);
  for (void* e : lists[3]) b_.free(map_, e);
  b_.zone_destroy(swap_);
  b_.zone_destroy(pv_);
  b_.zone_destroy(map_);
  swap_ = pv_ = map_ = nullptr;
  torn_down_ = true;
}

}  // namespace slabfuzz
