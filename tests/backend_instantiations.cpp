// The explicit instantiations that backend_instantiations.hpp declares (see there), for the
// backend that DBPOOL_TEST_MYSQL or DBPOOL_TEST_PG names.
#define DBPOOL_TEST_INSTANTIATE
#include "backend_instantiations.hpp"
