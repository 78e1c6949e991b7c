#pragma once

// The C allocator's hold on freed memory.
//
// glibc keeps what a process frees for reuse: per-thread arenas (up to eight per core) and
// free pages inside each heap stay resident. A service whose live heap is flat can still
// see its RSS climb when many threads take turns at bursts of short-lived allocations (a
// git write: packs, trees, indexes, then all freed). These two calls bound that.

#include <cstddef>
#include <cstdint>
#include <optional>

namespace ferry::runtime {

// What the allocator holds: bytes handed out and not yet freed (heap and mmapped chunks),
// and bytes freed but kept for reuse. RSS well above `in_use` means retention, not a leak.
struct HeapUsage {
  uint64_t in_use = 0;
  uint64_t free = 0;
};

// The allocator's own count (glibc's mallinfo2, a walk of every arena's free lists: call it
// per scrape, not per request). nullopt where the allocator has none. Thread-safe.
std::optional<HeapUsage> ReadHeapUsage();

// Caps the number of allocator arenas (glibc's M_ARENA_MAX); call at start, before threads.
// Fewer arenas mean more lock contention in malloc and far less retained memory; worth it
// in a service whose hot path is serialised anyway. No-op where the allocator lacks it.
void LimitAllocatorArenas(int arenas);

// Serves every allocation of at least `bytes` with its own mapping, returned to the kernel
// when freed (glibc's M_MMAP_THRESHOLD; setting it also stops glibc from raising it on its
// own). Buffers of a burst (file contents, pack data) then never stay behind in a heap as
// fragments. Call at start. No-op where the allocator lacks it.
void MapLargeAllocations(size_t bytes);

// Leaves free memory at the top of a heap in place until there is more than `bytes` of it
// (glibc's M_TRIM_THRESHOLD: 128 KiB unless set). A burst that frees and allocates again
// (a deflate stream per packed object) otherwise gives pages back and faults them in again
// over and over, and each give-back is a TLB shootdown that stalls the other cores. Pair it
// with ReturnFreeMemory after the burst. Call at start. No-op where the allocator lacks it.
void KeepFreedHeapTopUpTo(size_t bytes);

// Returns every whole free page of every arena to the kernel (glibc's malloc_trim). Costs
// about a walk of the free lists; call after a burst, not per allocation. Thread-safe.
void ReturnFreeMemory();

}  // namespace ferry::runtime
