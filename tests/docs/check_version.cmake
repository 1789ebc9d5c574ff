# cmake -D SOURCE_DIR=... -D PROJECT_VERSION=... -P check_version.cmake
#
# The version is written once, in include/dbpool/version.hpp (CMake's project(VERSION) is read
# from it, so PROJECT_VERSION must agree); the documents that name it must follow: CHANGELOG.md
# has an entry for it, and the README's find_package and FetchContent lines ask for it.
cmake_minimum_required(VERSION 3.21)
foreach(var IN ITEMS SOURCE_DIR PROJECT_VERSION)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "check_version.cmake: -D ${var}=... is required")
    endif()
endforeach()

file(STRINGS "${SOURCE_DIR}/include/dbpool/version.hpp" lines
    REGEX "^#define DBPOOL_VERSION_STRING ")
if(NOT lines MATCHES "\"([0-9]+)\\.([0-9]+)\\.([0-9]+)\"")
    message(FATAL_ERROR "include/dbpool/version.hpp: no DBPOOL_VERSION_STRING \"X.Y.Z\"")
endif()
set(version "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}.${CMAKE_MATCH_3}")
set(major_minor "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}")

set(problems "")
if(NOT version STREQUAL PROJECT_VERSION)
    string(APPEND problems "  CMake's project version is ${PROJECT_VERSION}, version.hpp says "
                           "${version} (reconfigure)\n")
endif()
file(READ "${SOURCE_DIR}/CHANGELOG.md" changelog)
string(REPLACE "." "\\." version_regex "${version}")
if(NOT changelog MATCHES "\n## \\[${version_regex}\\]")
    string(APPEND problems "  CHANGELOG.md has no \"## [${version}]\" entry\n")
endif()
file(READ "${SOURCE_DIR}/README.md" readme)
string(REPLACE "." "\\." major_minor_regex "${major_minor}")
if(NOT readme MATCHES "find_package\\(dbpool ${major_minor_regex} ")
    string(APPEND problems "  README.md does not ask for find_package(dbpool ${major_minor} ...)\n")
endif()
if(NOT readme MATCHES "GIT_TAG v${version_regex}")
    string(APPEND problems "  README.md's FetchContent example does not use GIT_TAG v${version}\n")
endif()
if(problems)
    message(FATAL_ERROR "version ${version} (include/dbpool/version.hpp):\n${problems}")
endif()
message(STATUS "version ${version}: CMake, CHANGELOG.md and README.md agree")
