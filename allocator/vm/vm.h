// vm.h - the VM side-structures whose allocation patterns decide whether kmalloc_obj
// can replace zalloc: PV entries (pmap), MAP entries (vm_map) and SWAPMETA
// (swap_pager), on top of any backend.
//
//  - pmap:       a user page fault allocates a page and a PV entry; unmapping frees both;
//  - vm_map:     growing a map allocates a MAP entry; every new slab of a kmalloc_obj
//                zone is mapped into the kernel map and so needs a MAP entry itself
//                (the recursion of problem B; the MAP zone's own slabs carry their
//                entry inside them, as self-hosting allocators do);
//  - swap_pager: the pageout daemon, when free pages run low, allocates a SWAPMETA
//                entry per block of pages it pages out, and so frees those pages;
//  - boot:       the VM needs PV and MAP entries before it can hand out pages.
//
// Modes: naive (kmalloc_obj as upstream: no boot slabs, no reserve), reserved (with
// (A) and (B)), zalloc (today's kernel, on the zalloc backend: PV and MAP ENTRY
// zbootinit()ed with static arrays, PV and SWAPMETA ZONE_INTERRUPT, MAP ENTRY growing
// from the system tier). Other backends run naive or reserved with whatever of (A)
// and (B) they support. Invariant: every entry the Vm allocated is freed by teardown(), and
// the MAP zone goes last (other zones' slabs hold MAP entries).
#ifndef SLABFUZZ_ALLOCATOR_VM_VM_H_
#define SLABFUZZ_ALLOCATOR_VM_VM_H_

#include <atomic>
#include <cstdint>
#include <string_view>
#include <vector>

#include "allocator/backend/backend.h"
#include "allocator/kenv/kenv.h"

namespace slabfuzz {

enum class VmMode { kNaive, kReserved, kZalloc };
const char* vm_mode_name(VmMode m);
bool parse_vm_mode(std::string_view s, VmMode* m);

struct VmOptions {
  VmMode mode = VmMode::kReserved;
  int reserve = 2;           // X spare slabs per VM zone (reserved mode)
  int boot_slabs = 1;        // boot slabs for the PV and MAP zones (reserved mode)
  int pv_entries = 0;        // zalloc mode: PV ENTRY's cap (0: two per page of memory)
  int bootstrap_pv = 128;    // kernel PV entries the boot sequence needs
  int bootstrap_map = 16;    // kernel MAP entries the boot sequence needs
  int pages_per_swapmeta = 4;
};

// Counters, bumped by any CPU (relaxed atomics; read them as plain numbers).
struct VmStats {
  std::atomic<uint64_t> faults{0}, fault_failures{0}, unmaps{0};
  std::atomic<uint64_t> pageout_runs{0}, pages_paged_out{0}, swapmeta_failures{0}, swapins{0};
  std::atomic<uint64_t> slabs_mapped{0};
};

class Vm {
 public:
  // From a kernel thread. Creates the PV, MAP and SWAPMETA zones; in reserved mode
  // registers boot slabs, and sets the reserves once the VM is up.
  Vm(Backend& backend, const VmOptions& opts);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  // The boot sequence: in boot phase EARLY, allocate the kernel's PV and MAP entries,
  // then advance to VM_READY. With naive zones this panics (no page before the VM).
  void bootstrap();
  // A user page fault (flags for the page and the PV entry). False if it failed.
  bool fault(int flags);
  bool unmap_one();
  // Other consumers touch `pages` of their anonymous memory again: what had been
  // swapped out of it comes back in, and its SWAPMETA entries are freed.
  void anon_touch(size_t pages);
  // Other consumers free `pages` of their anonymous memory: what of it was on swap
  // goes with it, and so do its SWAPMETA entries.
  void anon_free(size_t pages);
  // Pages out up to npages user pages; returns the pages given back.
  int pageout(int npages);
  // The pageout daemon's body (a kenv daemon thread): sleeps until vm_wait() wakes it,
  // pages out until free pages reach the target (once the VM is up). If busy is given,
  // it is incremented around each piece of work (drivers' quiescence accounting).
  void pageout_daemon(int* busy = nullptr);
  // Frees everything it holds and destroys its zones (MAP last).
  void teardown();

  void* pv_zone() const { return pv_; }
  void* map_zone() const { return map_; }
  void* swap_zone() const { return swap_; }
  size_t mapped_pages();
  const VmStats& stats() const { return stats_; }
  VmMode mode() const { return o_.mode; }
  Backend& backend() { return b_; }

  // The kmalloc_obj slab hooks (the Vm in charge installs them).
  bool map_slab(void* zone, int flags, void** cookie);
  void unmap_slab(void* cookie);

 private:
  struct UserPage {
    void* page;
    void* pv;
  };
  void set_reserves();
  void anon_drop(size_t pages, bool swapin);

  Backend& b_;
  VmOptions o_;
  void* pv_ = nullptr;
  void* map_ = nullptr;
  void* swap_ = nullptr;
  std::vector<void*> boot_mem_;  // heap boot memory (beyond the static region)
  bool boot_region_ = false;     // holds the static boot region
  kenv::spinlock spin_;
  std::vector<UserPage> pages_;
  std::vector<void*> map_entries_;
  struct Swapped {
    void* swapmeta;
    int pages;  // of its block still out on swap; freed when the last comes back
  };
  std::vector<Swapped> swapmeta_;
  std::vector<void*> anon_swapmeta_;  // for swapped-out anonymous (pressure) memory
  std::vector<void*> kernel_entries_pv_;
  std::vector<void*> kernel_entries_map_;
  VmStats stats_;
  uint64_t fresh_faults_ = 0;  // faults that were not swap-ins (under spin_)
  bool torn_down_ = false;
};

}  // namespace slabfuzz

#endif  // SLABFUZZ_ALLOCATOR_VM_VM_H_
