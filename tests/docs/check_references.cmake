# cmake -D SOURCE_DIR=... -P check_references.cmake
#
# Every reference in the project's documents resolves inside the repository:
# 1. each repository path the Markdown documents name in backquotes (`docs/pg.md`,
#    `examples/error_handling.cpp`, `scripts/with-env.sh`, `<dbpool/pg.hpp>`, ...) exists;
# 2. no file points at documents that are not part of it (the project's own design notes
#    outside the repository were once cited by section number; a reader cannot follow that).
cmake_minimum_required(VERSION 3.21)
if(NOT DEFINED SOURCE_DIR)
    message(FATAL_ERROR "check_references.cmake: -D SOURCE_DIR=... is required")
endif()

set(problems "")

# 1. Paths named in the documents.
file(GLOB documents "${SOURCE_DIR}/*.md" "${SOURCE_DIR}/docs/*.md")
set(checked 0)
foreach(document IN LISTS documents)
    file(READ "${document}" text)
    file(RELATIVE_PATH name "${SOURCE_DIR}" "${document}")
    # `dir/...` for the repository's top-level directories, and <dbpool/...> headers.
    string(REGEX MATCHALL
        "`(docs|examples|scripts|include|tests|bench|cmake)/[A-Za-z0-9_./*-]+`|<dbpool/[a-z_/]+\\.hpp>"
        references "${text}")
    list(REMOVE_DUPLICATES references)
    foreach(reference IN LISTS references)
        string(REGEX REPLACE "^[`<]|[`>]$" "" path "${reference}")
        string(REGEX REPLACE "/$" "" path "${path}")
        if(path MATCHES "^dbpool/")
            set(path "include/${path}")
        endif()
        if(path MATCHES "[*]")
            file(GLOB matches "${SOURCE_DIR}/${path}")
        elseif(EXISTS "${SOURCE_DIR}/${path}")
            set(matches "${path}")
        else()
            set(matches "")
        endif()
        math(EXPR checked "${checked} + 1")
        if(NOT matches)
            string(APPEND problems "  ${name}: ${reference} does not exist\n")
        endif()
    endforeach()
endforeach()

# 2. References to documents outside the repository, in every text file of the project.
file(GLOB_RECURSE files LIST_DIRECTORIES false
    "${SOURCE_DIR}/include/*" "${SOURCE_DIR}/tests/*" "${SOURCE_DIR}/examples/*"
    "${SOURCE_DIR}/bench/*" "${SOURCE_DIR}/cmake/*" "${SOURCE_DIR}/scripts/*"
    "${SOURCE_DIR}/docs/*.md" "${SOURCE_DIR}/.ci/*")
file(GLOB top "${SOURCE_DIR}/*.md" "${SOURCE_DIR}/CMakeLists.txt" "${SOURCE_DIR}/Doxyfile"
    "${SOURCE_DIR}/.clang-format" "${SOURCE_DIR}/.clang-tidy")
list(APPEND files ${top})
# The patterns are split so that this file does not match itself.
set(outside "\\.\\./shar" "ed/|(^|[^A-Za-z_])(SP" "EC|ST" "YLE)([^A-Za-z_]|$)")
string(CONCAT outside ${outside})
foreach(file IN LISTS files)
    if(file MATCHES "\\.(png|jpg)$")
        continue()
    endif()
    file(STRINGS "${file}" lines REGEX "${outside}")
    foreach(line IN LISTS lines)
        file(RELATIVE_PATH name "${SOURCE_DIR}" "${file}")
        string(STRIP "${line}" line)
        string(APPEND problems "  ${name}: refers outside the repository: ${line}\n")
    endforeach()
endforeach()

if(problems)
    message(FATAL_ERROR "references that do not resolve inside the repository:\n${problems}")
endif()
list(LENGTH documents document_count)
list(LENGTH files file_count)
message(STATUS "references: ${checked} paths in ${document_count} documents exist; "
               "${file_count} files refer only to the repository")
