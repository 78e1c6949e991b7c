#include "lib/runtime/memory.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace ferry::runtime {

void LimitAllocatorArenas(int arenas) {
#if defined(__GLIBC__)
  if (arenas > 0) mallopt(M_ARENA_MAX, arenas);
#else
  (void)arenas;
#endif
}

void MapLargeAllocations(size_t bytes) {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes));
#else
  (void)bytes;
#endif
}

void KeepFreedHeapTopUpTo(size_t bytes) {
#if defined(__GLIBC__)
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(bytes));
#else
  (void)bytes;
#endif
}

void ReturnFreeMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

std::optional<HeapUsage> ReadHeapUsage() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
  const struct mallinfo2 info = mallinfo2();
  return HeapUsage{info.uordblks + info.hblkhd, info.fordblks};
#else
  return std::nullopt;
#endif
}

}  // namespace ferry::runtime
