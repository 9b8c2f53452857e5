/*
 * malloc.h - allocation flags shared by every allocator under test (sys/malloc.h).
 *
 * Flag semantics kept by every allocator in slabfuzz:
 *   M_RNOWAIT                never sleeps: a request that cannot be met returns NULL
 *   M_WAITOK                 may sleep in vm_wait() until memory is freed
 *   M_NULLOK                 NULL is an acceptable answer (otherwise failing panics)
 *   M_ZERO                   the object is zeroed
 *   M_USE_RESERVE            a system allocation: may use the VM's system page tier
 *                            and a zone's spare slabs
 *   M_USE_INTERRUPT_RESERVE  may take the VM's last pages
 * Unlike upstream DragonFly, M_NOWAIT never blocks (slabfuzz checks it).
 */
#ifndef SLABFUZZ_ALLOCATOR_KENV_MALLOC_H_
#define SLABFUZZ_ALLOCATOR_KENV_MALLOC_H_

#include "allocator/kenv/page_source.h"

#define M_RNOWAIT		0x0001
#define M_WAITOK		0x0002
#define M_ZERO			0x0100
#define M_NULLOK		0x0200
#define M_USE_RESERVE		0x0400
#define M_USE_INTERRUPT_RESERVE	0x0800

#define M_NOWAIT	(M_RNOWAIT | M_NULLOK | M_USE_RESERVE)
#define M_INTNOWAIT	(M_RNOWAIT | M_NULLOK | M_USE_RESERVE | M_USE_INTERRUPT_RESERVE)
#define M_SYSWAIT	(M_WAITOK | M_USE_RESERVE)

namespace kenv {

/* The page tier a request may use. */
inline vm_tier malloc_flags_tier(int flags)
{
	if (flags & M_USE_INTERRUPT_RESERVE)
		return VM_TIER_INTERRUPT;
	if (flags & M_USE_RESERVE)
		return VM_TIER_SYSTEM;
	return VM_TIER_NORMAL;
}

inline bool malloc_flags_canwait(int flags)
{
	return (flags & M_RNOWAIT) == 0;
}

}  // namespace kenv

#endif  // SLABFUZZ_ALLOCATOR_KENV_MALLOC_H_
