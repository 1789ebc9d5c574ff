// Must not compile: a std::string_view into a Row of a temporary result dangles at the ';'.
#include <dbpool/mysql/result_set.hpp>

#include <string_view>

dbpool::mysql::ResultSet make();

std::string_view name() { return make()[0].get<std::string_view>("name"); }
