# cmake -D BUILD_DIR=... -D CONSUMER_SOURCE_DIR=... -D WORK_DIR=... -D WITH_MYSQL=ON|OFF
#       -D WITH_PG=ON|OFF -D CXX_COMPILER=... [-D GENERATOR=...] -P run_consumer_test.cmake
#
# 1. cmake --install BUILD_DIR --prefix WORK_DIR/prefix
# 2. configure, build and run the consumer project with CMAKE_PREFIX_PATH=WORK_DIR/prefix, asking
#    find_package for the installed MAJOR.MINOR (the program checks the headers agree); while the
#    major version is 0, check that asking for the previous minor version is refused
# 3. check `pkg-config --modversion` against the headers, then compile a one-line program with
#    `pkg-config --cflags dbpool` (and dbpool-mysql, dbpool-pg)
foreach(var IN ITEMS BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR CXX_COMPILER)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "run_consumer_test.cmake: -D ${var}=... is required")
    endif()
endforeach()
if(WITH_MYSQL)
    set(WITH_MYSQL ON)
else()
    set(WITH_MYSQL OFF)
endif()
if(WITH_PG)
    set(WITH_PG ON)
else()
    set(WITH_PG OFF)
endif()

# The consumer is an ordinary user program: no sanitizer or warning flags from the environment.
unset(ENV{CXXFLAGS})
unset(ENV{LDFLAGS})

function(run step)
    message(STATUS "consumer test: ${step}: ${ARGN}")
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(NOT result EQUAL 0)
        message(FATAL_ERROR "consumer test: ${step} failed (${result}):\n${out}")
    endif()
    set(last_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

run("install" "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}")

# Warnings-as-errors and sanitizers belong to dbpool's own targets, never to its users.
file(GLOB exported "${prefix}/share/cmake/dbpool/*Targets*.cmake" "${prefix}/share/pkgconfig/*.pc")
foreach(file IN LISTS exported)
    file(STRINGS "${file}" leaked REGEX "-Werror|-fsanitize|dbpool_project_options")
    if(leaked)
        message(FATAL_ERROR "consumer test: ${file} exports project-only flags: ${leaked}")
    endif()
endforeach()

# The installed headers say which version this is; the consumer asks for MAJOR.MINOR of it.
file(STRINGS "${prefix}/include/dbpool/version.hpp" version_lines
    REGEX "^#define DBPOOL_VERSION_(MAJOR|MINOR|STRING) ")
string(REGEX MATCH "DBPOOL_VERSION_MAJOR ([0-9]+)" _ "${version_lines}")
set(major "${CMAKE_MATCH_1}")
string(REGEX MATCH "DBPOOL_VERSION_MINOR ([0-9]+)" _ "${version_lines}")
set(minor "${CMAKE_MATCH_1}")
string(REGEX MATCH "DBPOOL_VERSION_STRING \"([0-9.]+)\"" _ "${version_lines}")
set(version "${CMAKE_MATCH_1}")
if(major STREQUAL "" OR minor STREQUAL "" OR version STREQUAL "")
    message(FATAL_ERROR "consumer test: no version in ${prefix}/include/dbpool/version.hpp")
endif()

set(generator_args)
if(GENERATOR)
    set(generator_args -G "${GENERATOR}")
endif()
run("configure consumer" "${CMAKE_COMMAND}" ${generator_args}
    -S "${CONSUMER_SOURCE_DIR}" -B "${consumer_build}"
    "-DCMAKE_PREFIX_PATH=${prefix}"
    "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
    -DCMAKE_BUILD_TYPE=Release
    # Only the installed package may be found, never a dbpool in the user package registry.
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    "-DDBPOOL_CONSUMER_WITH_MYSQL=${WITH_MYSQL}"
    "-DDBPOOL_CONSUMER_WITH_PG=${WITH_PG}"
    "-DDBPOOL_CONSUMER_VERSION=${major}.${minor}")
run("build consumer" "${CMAKE_COMMAND}" --build "${consumer_build}")
run("run consumer" "${consumer_build}/dbpool_consumer")
message(STATUS "consumer test: consumer said: ${last_output}")

# The compatibility rule (include/dbpool/version.hpp): while the major version is 0, asking for
# an older minor version must fail, because a minor release may change the API.
if(major EQUAL 0 AND minor GREATER 0)
    math(EXPR older_minor "${minor} - 1")
    execute_process(COMMAND "${CMAKE_COMMAND}" ${generator_args}
            -S "${CONSUMER_SOURCE_DIR}" -B "${WORK_DIR}/build-older"
            "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
            -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "-DDBPOOL_CONSUMER_VERSION=0.${older_minor}"
        RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(result EQUAL 0 OR NOT out MATCHES "considered but not accepted")
        message(FATAL_ERROR "consumer test: find_package(dbpool 0.${older_minor}) accepted "
                            "${version} (result ${result}):\n${out}")
    endif()
    message(STATUS "consumer test: find_package(dbpool 0.${older_minor}) refused ${version}")
endif()

# pkg-config: the .pc files are relocatable (prefix=${pcfiledir}/../..).
find_program(PKG_CONFIG_EXECUTABLE NAMES pkg-config pkgconf)
if(NOT PKG_CONFIG_EXECUTABLE)
    message(FATAL_ERROR "consumer test: pkg-config not found (scripts/install-deps.sh installs it)")
endif()
set(ENV{PKG_CONFIG_PATH} "${prefix}/share/pkgconfig")
set(pc_modules dbpool)
set(pc_source "#include <dbpool/error.hpp>\nint main() { return dbpool::Error(dbpool::ErrorCode::timeout, \"t\").code() == dbpool::ErrorCode::timeout ? 0 : 1; }\n")
if(WITH_MYSQL)
    list(APPEND pc_modules dbpool-mysql)
    set(pc_source "#include <mysql.h>\n${pc_source}")
endif()
if(WITH_PG)
    list(APPEND pc_modules dbpool-pg)
    # A call into libpq, so the link proves the Libs of dbpool-pg (and its Requires) too.
    set(pc_source "#include <dbpool/pg.hpp>\nint pg_version() { return PQlibVersion(); }\n${pc_source}")
endif()
run("pkg-config --modversion" "${PKG_CONFIG_EXECUTABLE}" --modversion ${pc_modules})
string(REGEX REPLACE "[\r\n]+" ";" pc_versions "${last_output}")
list(REMOVE_ITEM pc_versions "")
foreach(pc_version IN LISTS pc_versions)
    if(NOT pc_version STREQUAL version)
        message(FATAL_ERROR "consumer test: pkg-config says ${pc_versions} for ${pc_modules}, "
                            "the headers say ${version}")
    endif()
endforeach()
run("pkg-config --cflags" "${PKG_CONFIG_EXECUTABLE}" --cflags ${pc_modules})
separate_arguments(pc_cflags UNIX_COMMAND "${last_output}")
run("pkg-config --libs" "${PKG_CONFIG_EXECUTABLE}" --libs ${pc_modules})
separate_arguments(pc_libs UNIX_COMMAND "${last_output}")
file(WRITE "${WORK_DIR}/pc_check.cpp" "${pc_source}")
run("compile with pkg-config flags" "${CXX_COMPILER}" -std=c++17 ${pc_cflags}
    "${WORK_DIR}/pc_check.cpp" -o "${WORK_DIR}/pc_check" ${pc_libs})
run("run pkg-config program" "${WORK_DIR}/pc_check")

message(STATUS "consumer test: passed (mysql component: ${WITH_MYSQL}, pg component: ${WITH_PG})")
