// A fuzz target with planted undefined behaviour, for scripts/fuzz.sh to prove that a UBSan
// report fails the run: an input "UB!" followed by a byte N > 0 adds N to INT_MAX (signed
// overflow). Any other input does nothing. It is run on that one input, never fuzzed.
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4 || std::memcmp(data, "UB!", 3) != 0) return 0;
  volatile int big = INT_MAX;  // volatile: the compiler cannot fold the overflow away
  volatile int sum = big + static_cast<int>(data[3]);
  (void)sum;
  return 0;
}
