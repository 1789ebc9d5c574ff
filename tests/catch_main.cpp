// The Catch2 main for every dbpool test binary (link dbpool_test_main), compiled once.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
