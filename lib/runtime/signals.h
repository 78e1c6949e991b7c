// Shutdown signals (SIGTERM from Kubernetes, SIGINT from a terminal).
#pragma once

namespace ferry::runtime {

// Blocks SIGTERM and SIGINT in the calling thread, so that every thread started afterwards
// inherits the mask and the signals stay pending until WaitForShutdownSignal(). Call first
// thing in main(), before any library starts a thread.
void BlockShutdownSignals();

// Waits until SIGTERM or SIGINT arrives; returns its number. Requires BlockShutdownSignals().
int WaitForShutdownSignal();

}  // namespace ferry::runtime
