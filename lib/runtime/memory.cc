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

void ReturnFreeMemory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace ferry::runtime
