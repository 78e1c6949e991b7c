// (filled in by the change that adds these tests)
#include "tests/binaries.h"
