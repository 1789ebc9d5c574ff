// Must NOT compile: a std::string_view read from a temporary Row would point into a result that
// dies with it. tests/pg/check_compile_fails.cmake compiles this file (once per case) and expects
// the static_assert; the lvalue uses below it must compile.
#include <dbpool/pg/result_set.hpp>

#include <string_view>

std::string_view from_temporary_row(const dbpool::pg::ResultSet& rows) {
#if defined(DBPOOL_DANGLING_ROW)
    return rows.row(0).get<std::string_view>(0);  // rvalue Row
#elif defined(DBPOOL_DANGLING_RESULT)
    return dbpool::pg::ResultSet(rows).scalar<std::string_view>();  // rvalue ResultSet
#else
    const dbpool::pg::Row row = rows.row(0);  // named: the row keeps the result alive
    (void)row.get<std::string_view>(0);
    return rows.scalar<std::string_view>();  // the caller's ResultSet keeps it alive
#endif
}
