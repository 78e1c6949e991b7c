#pragma once

// Work shared out over a few threads: the one pool the services use for CPU- or
// network-bound loops over independent items (edits of files, kustomize builds, applies).

#include <cstddef>
#include <functional>

namespace ferry::runtime {

// Calls `work(i)` once for each i in [0, count), on up to `max_threads` threads (the calling
// one among them, and never more threads than items). `work` must be safe to run side by
// side; the items are taken in order, one at a time, by whichever thread is free.
//
// An exception from `work` stops the other threads at their next item and is rethrown here
// once every thread has ended (the first one thrown). A thread that cannot be started leaves
// its share to the others, down to the calling thread alone. Returns when every item is
// done.
void ParallelFor(size_t count, size_t max_threads, const std::function<void(size_t)>& work);

}  // namespace ferry::runtime
