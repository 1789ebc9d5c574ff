# FindMySQLClient
# ---------------
# Finds a MySQL/MariaDB C client library: MariaDB Connector/C or Oracle's libmysqlclient (8.0+).
#
# Search order: pkg-config `libmariadb`, then `mysqlclient`; without pkg-config (or when neither
# module exists) `mariadb_config`, then `mysql_config`; finally a plain find_path(mysql.h) /
# find_library(mariadb mysqlclient). The include directory is the one that holds mysql.h, so
# code includes <mysql.h>.
#
# Input variables:
#   MySQLClient_USE_STATIC_LIBS  ON: link the static archive (libmariadb.a, libmysqlclient.a)
#                                and its private dependencies (TLS library, zlib, ...), taken
#                                from `pkg-config --static` or from <x>_config. Default OFF.
#   MySQLClient_INCLUDE_DIR, MySQLClient_LIBRARY  (cache) point at a client outside the default
#                                paths.
# Imported target:
#   MySQLClient::MySQLClient     include directory, library, and for a static archive its
#                                private dependencies (INTERFACE_LINK_LIBRARIES).
# Result variables:
#   MySQLClient_FOUND, MySQLClient_VERSION, MySQLClient_INCLUDE_DIRS, MySQLClient_LIBRARIES
#   MySQLClient_FLAVOR           "MariaDB Connector/C" or "libmysqlclient"
#   MySQLClient_PKG_CONFIG_NAME  the pkg-config module that was used ("" if none), so
#                                dbpool-mysql.pc can name it in its Requires line.
#   MySQLClient_LINK_DEPENDENCIES  the private dependencies attached for a static archive.

include(FindPackageHandleStandardArgs)

set(MySQLClient_PKG_CONFIG_NAME "")
set(_mysqlclient_include_hints "")
set(_mysqlclient_library_hints "")
set(_mysqlclient_names "")
set(_mysqlclient_version "")
set(_mysqlclient_private "")  # private link dependencies, as -l names or paths

find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
    foreach(_mysqlclient_pc IN ITEMS libmariadb mysqlclient)
        # A separate prefix per module: pkg_check_modules caches its results per prefix.
        string(MAKE_C_IDENTIFIER "_MySQLClient_PC_${_mysqlclient_pc}" _mysqlclient_prefix)
        pkg_check_modules(${_mysqlclient_prefix} QUIET ${_mysqlclient_pc})
        if(${_mysqlclient_prefix}_FOUND)
            set(MySQLClient_PKG_CONFIG_NAME "${_mysqlclient_pc}")
            set(_mysqlclient_include_hints ${${_mysqlclient_prefix}_INCLUDE_DIRS})
            set(_mysqlclient_library_hints ${${_mysqlclient_prefix}_LIBRARY_DIRS}
                ${${_mysqlclient_prefix}_STATIC_LIBRARY_DIRS})
            set(_mysqlclient_names ${${_mysqlclient_prefix}_LIBRARIES})
            set(_mysqlclient_version ${${_mysqlclient_prefix}_VERSION})
            # `pkg-config --static` lists the client and then its private dependencies.
            set(_mysqlclient_private ${${_mysqlclient_prefix}_STATIC_LIBRARIES})
            break()
        endif()
    endforeach()
endif()

if(NOT MySQLClient_PKG_CONFIG_NAME)
    find_program(MySQLClient_CONFIG_EXECUTABLE NAMES mariadb_config mysql_config)
    mark_as_advanced(MySQLClient_CONFIG_EXECUTABLE)
    if(MySQLClient_CONFIG_EXECUTABLE)
        # mariadb_config --version is the server's version; --cc_version the connector's.
        foreach(_mysqlclient_query IN ITEMS include libs libs_sys cc_version version)
            execute_process(COMMAND "${MySQLClient_CONFIG_EXECUTABLE}" "--${_mysqlclient_query}"
                OUTPUT_VARIABLE _mysqlclient_out_${_mysqlclient_query}
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _mysqlclient_status)
            if(NOT _mysqlclient_status EQUAL 0)
                set(_mysqlclient_out_${_mysqlclient_query} "")  # e.g. mysql_config --libs_sys
            endif()
        endforeach()
        separate_arguments(_mysqlclient_words UNIX_COMMAND
            "${_mysqlclient_out_include} ${_mysqlclient_out_libs} ${_mysqlclient_out_libs_sys}")
        foreach(_mysqlclient_word IN LISTS _mysqlclient_words)
            if(_mysqlclient_word MATCHES "^-I(.+)")
                list(APPEND _mysqlclient_include_hints "${CMAKE_MATCH_1}")
            elseif(_mysqlclient_word MATCHES "^-L(.+)")
                list(APPEND _mysqlclient_library_hints "${CMAKE_MATCH_1}")
            elseif(_mysqlclient_word MATCHES "^-l(.+)")
                list(APPEND _mysqlclient_private "${CMAKE_MATCH_1}")
            endif()
        endforeach()
        set(_mysqlclient_names ${_mysqlclient_private})
        if(_mysqlclient_out_cc_version MATCHES "^[0-9.]+")
            set(_mysqlclient_version "${CMAKE_MATCH_0}")
        elseif(_mysqlclient_out_version MATCHES "^[0-9.]+")
            set(_mysqlclient_version "${CMAKE_MATCH_0}")
        endif()
    endif()
endif()

find_path(MySQLClient_INCLUDE_DIR
    NAMES mysql.h
    HINTS ${_mysqlclient_include_hints}
    PATH_SUFFIXES mariadb mysql)

# Prefer the library pkg-config or <x>_config named; otherwise MariaDB's, then Oracle's.
list(FILTER _mysqlclient_names INCLUDE REGEX "mariadb|mysqlclient")
list(APPEND _mysqlclient_names mariadb mysqlclient)
list(REMOVE_DUPLICATES _mysqlclient_names)
if(MySQLClient_USE_STATIC_LIBS)
    set(_mysqlclient_saved_suffixes ${CMAKE_FIND_LIBRARY_SUFFIXES})
    set(CMAKE_FIND_LIBRARY_SUFFIXES .a)
endif()
find_library(MySQLClient_LIBRARY
    NAMES ${_mysqlclient_names}
    HINTS ${_mysqlclient_library_hints}
    PATH_SUFFIXES mariadb mysql)
if(MySQLClient_USE_STATIC_LIBS)
    set(CMAKE_FIND_LIBRARY_SUFFIXES ${_mysqlclient_saved_suffixes})
endif()

# Which library the header belongs to (MariaDB's mysql.h defines LIBMARIADB).
set(MySQLClient_FLAVOR "")
if(MySQLClient_INCLUDE_DIR)
    if(EXISTS "${MySQLClient_INCLUDE_DIR}/mariadb_version.h")
        set(MySQLClient_FLAVOR "MariaDB Connector/C")
    else()
        set(MySQLClient_FLAVOR "libmysqlclient")
    endif()
endif()

set(MySQLClient_VERSION "${_mysqlclient_version}")
if(NOT MySQLClient_VERSION AND MySQLClient_INCLUDE_DIR)
    foreach(_mysqlclient_version_header IN ITEMS mariadb_version.h mysql_version.h)
        set(_mysqlclient_version_file "${MySQLClient_INCLUDE_DIR}/${_mysqlclient_version_header}")
        if(EXISTS "${_mysqlclient_version_file}")
            file(STRINGS "${_mysqlclient_version_file}" _mysqlclient_version_line
                REGEX "^#define[ \t]+(MARIADB_PACKAGE_VERSION|LIBMYSQL_VERSION|MYSQL_SERVER_VERSION)[ \t]")
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
    # A static archive does not record what it needs: its private dependencies go along.
    set(MySQLClient_LINK_DEPENDENCIES "")
    if(MySQLClient_LIBRARY MATCHES "\\.a$")
        foreach(_mysqlclient_dependency IN LISTS _mysqlclient_private)
            if(NOT _mysqlclient_dependency MATCHES "^(mariadb|mysqlclient|mariadbclient)$")
                list(APPEND MySQLClient_LINK_DEPENDENCIES "${_mysqlclient_dependency}")
            endif()
        endforeach()
        list(REMOVE_DUPLICATES MySQLClient_LINK_DEPENDENCIES)
        list(APPEND MySQLClient_LIBRARIES ${MySQLClient_LINK_DEPENDENCIES})
    endif()
    if(NOT TARGET MySQLClient::MySQLClient)
        add_library(MySQLClient::MySQLClient UNKNOWN IMPORTED)
        set_target_properties(MySQLClient::MySQLClient PROPERTIES
            IMPORTED_LOCATION "${MySQLClient_LIBRARY}"
            INTERFACE_INCLUDE_DIRECTORIES "${MySQLClient_INCLUDE_DIR}")
        if(MySQLClient_LINK_DEPENDENCIES)
            set_target_properties(MySQLClient::MySQLClient PROPERTIES
                INTERFACE_LINK_LIBRARIES "${MySQLClient_LINK_DEPENDENCIES}")
        endif()
    endif()
endif()

mark_as_advanced(MySQLClient_INCLUDE_DIR MySQLClient_LIBRARY)
foreach(_mysqlclient_variable IN ITEMS names include_hints library_hints version private words
        out_include out_libs out_libs_sys out_cc_version out_version saved_suffixes)
    unset(_mysqlclient_${_mysqlclient_variable})
endforeach()
