# cmake -D INCLUDE_DIR=<repo>/include -P check_core_includes.cmake
# Fails when a core header (outside dbpool/mysql/ and dbpool/mysql.hpp) includes the MySQL
# client (<mysql.h>, <mysql/...>, <mariadb/...>) or a backend header.
file(GLOB_RECURSE headers RELATIVE "${INCLUDE_DIR}" "${INCLUDE_DIR}/dbpool/*.hpp")
set(offenders)
foreach(header IN LISTS headers)
    if(header MATCHES "^dbpool/mysql(/|\\.hpp$)")
        continue()
    endif()
    file(STRINGS "${INCLUDE_DIR}/${header}" lines
        REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"](mysql|mariadb|errmsg|dbpool/mysql)")
    if(lines)
        list(APPEND offenders "${header}: ${lines}")
    endif()
endforeach()
if(offenders)
    list(JOIN offenders "\n  " text)
    message(FATAL_ERROR "core headers must not include the MySQL client:\n  ${text}")
endif()
list(LENGTH headers count)
message(STATUS "${count} headers checked: the core does not include the MySQL client")
