// pagemap.cc - the page-ownership map (see pagemap.h): 36 bits of page number split
// into an 18-bit root index and an 18-bit leaf index; leaves are allocated on first
// use, published with a compare-and-swap and never freed.
#include "allocator/kenv/pagemap.h"

#include <atomic>
#include <new>

#include "allocator/kenv/kenv.h"
#include "allocator/kenv/page_source.h"

namespace kenv {
namespace {

constexpr int kLeafBits = 18;
constexpr int kRootBits = 18;
constexpr size_t kLeafSize = size_t{1} << kLeafBits;
constexpr size_t kRootSize = size_t{1} << kRootBits;

struct Leaf {
	std::atomic<pagemap_owner *> e[kLeafSize];
};
std::atomic<Leaf *> g_root[kRootSize];

std::atomic<pagemap_owner *> *slot(uintptr_t page, bool create)
{
	size_t pn = page / PAGE_SIZE;
	size_t ri = (pn >> kLeafBits) & (kRootSize - 1);
	if ((pn >> (kLeafBits + kRootBits)) != 0)
		panic("pagemap: address %#lx beyond 48 bits", static_cast<unsigned long>(page));
	Leaf *leaf = g_root[ri].load(std::memory_order_acquire);
	if (leaf == nullptr) {
		if (!create)
			return nullptr;
		Leaf *fresh = new Leaf{};
		if (g_root[ri].compare_exchange_strong(leaf, fresh, std::memory_order_acq_rel))
			leaf = fresh;
		else
			delete fresh;
	}
	return &leaf->e[pn & (kLeafSize - 1)];
}

}  // namespace

bool pagemap_set(const void *addr, size_t bytes, pagemap_owner *owner)
{
	uintptr_t first = reinterpret_cast<uintptr_t>(addr) & ~(PAGE_SIZE - 1);
	uintptr_t end = reinterpret_cast<uintptr_t>(addr) + bytes;
	for (uintptr_t p = first; p < end; p += PAGE_SIZE) {
		pagemap_owner *expect = nullptr;
		if (!slot(p, true)->compare_exchange_strong(expect, owner,
							    std::memory_order_release)) {
			pagemap_clear(reinterpret_cast<void *>(first), p - first);
			return false;
		}
	}
	return true;
}

void pagemap_clear(const void *addr, size_t bytes)
{
	uintptr_t first = reinterpret_cast<uintptr_t>(addr) & ~(PAGE_SIZE - 1);
	uintptr_t end = reinterpret_cast<uintptr_t>(addr) + bytes;
	for (uintptr_t p = first; p < end; p += PAGE_SIZE) {
		std::atomic<pagemap_owner *> *s = slot(p, false);
		if (s != nullptr)
			s->store(nullptr, std::memory_order_release);
	}
}

pagemap_owner *pagemap_get(const void *addr)
{
	std::atomic<pagemap_owner *> *s = slot(reinterpret_cast<uintptr_t>(addr), false);
	return s != nullptr ? s->load(std::memory_order_acquire) : nullptr;
}

}  // namespace kenv
