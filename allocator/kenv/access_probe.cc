// access_probe.cc - see access_probe.h. Built with access_copts() like the allocators.
#include "allocator/kenv/access_probe.h"

namespace kenv::probe {

__attribute__((noinline)) void racy_increment(long* p)
{
	long v = *p;
	*p = v + 1;
}

__attribute__((noinline)) void publish_early(long* idx, long* slots)
{
	long i = *idx;
	*idx = i + 1;
	slots[i] = i + 1;
}

__attribute__((noinline)) void store(long* p, long v)
{
	*p = v;
}

__attribute__((noinline)) long load(const long* p)
{
	return *p;
}

__attribute__((noinline)) long stack_work(int n)
{
	volatile long buf[64];
	long sum = 0;
	for (int i = 0; i < n; i++)
		buf[i % 64] = i;
	for (int i = 0; i < n; i++)
		sum += buf[i % 64];
	return sum;
}

}  // namespace kenv::probe
