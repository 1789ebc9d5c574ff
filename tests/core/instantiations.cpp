// The explicit instantiations that instantiations.hpp declares (see there).
#define DBPOOL_TEST_INSTANTIATE
#include "instantiations.hpp"
