// Must not compile: scalar<std::string_view>() of a temporary result dangles at the ';'.
#include <dbpool/mysql/result_set.hpp>

#include <string_view>

dbpool::mysql::ResultSet make();

std::string_view name() { return make().scalar<std::string_view>(); }
