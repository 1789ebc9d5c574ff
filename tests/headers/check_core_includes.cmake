# cmake -D INCLUDE_DIR=<repo>/include -P check_core_includes.cmake
# Fails when a core header (outside dbpool/mysql/, dbpool/pg/ and their umbrella headers) includes
# a client library (<mysql.h>, <mysql/...>, <mariadb/...>, <libpq-fe.h>, <libpq/...>) or a backend
# header.
file(GLOB_RECURSE headers RELATIVE "${INCLUDE_DIR}" "${INCLUDE_DIR}/dbpool/*.hpp")
set(offenders)
foreach(header IN LISTS headers)
    if(header MATCHES "^dbpool/(mysql|pg)(/|\\.hpp$)")
        continue()
    endif()
    file(STRINGS "${INCLUDE_DIR}/${header}" lines
        REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"](mysql|mariadb|errmsg|libpq|postgres|pg_config|dbpool/mysql|dbpool/pg)")
    if(lines)
        list(APPEND offenders "${header}: ${lines}")
    endif()
endforeach()
if(offenders)
    list(JOIN offenders "\n  " text)
    message(FATAL_ERROR "core headers must not include a database client:\n  ${text}")
endif()
list(LENGTH headers count)
message(STATUS "${count} headers checked: the core does not include a database client")
