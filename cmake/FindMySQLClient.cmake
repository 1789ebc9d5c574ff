# FindMySQLClient
# ---------------
# Finds a MySQL/MariaDB C client library (MariaDB Connector/C or Oracle's libmysqlclient).
#
# Search order: pkg-config `libmariadb`, then pkg-config `mysqlclient`, then a plain
# find_path(mysql.h) / find_library(mariadb mysqlclient) search. The include directory is the
# one that holds mysql.h, so code includes <mysql.h>.
#
# Imported target:
#   MySQLClient::MySQLClient
# Result variables:
#   MySQLClient_FOUND, MySQLClient_VERSION, MySQLClient_INCLUDE_DIRS, MySQLClient_LIBRARIES
#   MySQLClient_PKG_CONFIG_NAME  the pkg-config module that was used ("" if none), so
#                                dbpool-mysql.pc can name it in its Requires line.
# Cache variables (set them to point at a client outside the default paths):
#   MySQLClient_INCLUDE_DIR, MySQLClient_LIBRARY

include(FindPackageHandleStandardArgs)

set(MySQLClient_PKG_CONFIG_NAME "")
set(_mysqlclient_pc_include_dirs "")
set(_mysqlclient_pc_library_dirs "")
set(_mysqlclient_pc_version "")

find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
    foreach(_mysqlclient_pc IN ITEMS libmariadb mysqlclient)
        # A separate prefix per module: pkg_check_modules caches its results per prefix.
        string(MAKE_C_IDENTIFIER "_MySQLClient_PC_${_mysqlclient_pc}" _mysqlclient_prefix)
        pkg_check_modules(${_mysqlclient_prefix} QUIET ${_mysqlclient_pc})
        if(${_mysqlclient_prefix}_FOUND)
            set(MySQLClient_PKG_CONFIG_NAME "${_mysqlclient_pc}")
            set(_mysqlclient_pc_include_dirs ${${_mysqlclient_prefix}_INCLUDE_DIRS})
            set(_mysqlclient_pc_library_dirs ${${_mysqlclient_prefix}_LIBRARY_DIRS})
            set(_mysqlclient_pc_libraries ${${_mysqlclient_prefix}_LIBRARIES})
            set(_mysqlclient_pc_version ${${_mysqlclient_prefix}_VERSION})
            break()
        endif()
    endforeach()
endif()

find_path(MySQLClient_INCLUDE_DIR
    NAMES mysql.h
    HINTS ${_mysqlclient_pc_include_dirs}
    PATH_SUFFIXES mariadb mysql)

# Prefer the library pkg-config named; otherwise MariaDB's, then Oracle's.
set(_mysqlclient_names ${_mysqlclient_pc_libraries})
list(FILTER _mysqlclient_names INCLUDE REGEX "mariadb|mysqlclient")
list(APPEND _mysqlclient_names mariadb mysqlclient)
list(REMOVE_DUPLICATES _mysqlclient_names)
find_library(MySQLClient_LIBRARY
    NAMES ${_mysqlclient_names}
    HINTS ${_mysqlclient_pc_library_dirs}
    PATH_SUFFIXES mariadb mysql)

set(MySQLClient_VERSION "${_mysqlclient_pc_version}")
if(NOT MySQLClient_VERSION AND MySQLClient_INCLUDE_DIR)
    foreach(_mysqlclient_version_header IN ITEMS mariadb_version.h mysql_version.h)
        set(_mysqlclient_version_file "${MySQLClient_INCLUDE_DIR}/${_mysqlclient_version_header}")
        if(EXISTS "${_mysqlclient_version_file}")
            file(STRINGS "${_mysqlclient_version_file}" _mysqlclient_version_line
                REGEX "^#define[ \t]+(MARIADB_PACKAGE_VERSION|MYSQL_SERVER_VERSION|LIBMYSQL_VERSION)[ \t]")
            if(_mysqlclient_version_line MATCHES "\"([0-9.]+)")
                set(MySQLClient_VERSION "${CMAKE_MATCH_1}")
                break()
            endif()
        endif()
    endforeach()
endif()

find_package_handle_standard_args(MySQLClient
    REQUIRED_VARS MySQLClient_LIBRARY MySQLClient_INCLUDE_DIR
    VERSION_VAR MySQLClient_VERSION)

if(MySQLClient_FOUND)
    set(MySQLClient_INCLUDE_DIRS "${MySQLClient_INCLUDE_DIR}")
    set(MySQLClient_LIBRARIES "${MySQLClient_LIBRARY}")
    if(NOT TARGET MySQLClient::MySQLClient)
        add_library(MySQLClient::MySQLClient UNKNOWN IMPORTED)
        set_target_properties(MySQLClient::MySQLClient PROPERTIES
            IMPORTED_LOCATION "${MySQLClient_LIBRARY}"
            INTERFACE_INCLUDE_DIRECTORIES "${MySQLClient_INCLUDE_DIR}")
    endif()
endif()

mark_as_advanced(MySQLClient_INCLUDE_DIR MySQLClient_LIBRARY)
unset(_mysqlclient_names)
unset(_mysqlclient_pc_include_dirs)
unset(_mysqlclient_pc_library_dirs)
unset(_mysqlclient_pc_libraries)
unset(_mysqlclient_pc_version)
