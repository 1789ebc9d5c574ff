// Must not compile: an iterator into a temporary result dangles at the ';'.
#include <dbpool/mysql/result_set.hpp>

dbpool::mysql::ResultSet make();

void walk() {
    auto first = make().begin();
    (void)first;
}
