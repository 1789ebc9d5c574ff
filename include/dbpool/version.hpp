#pragma once

/// \file
/// dbpool's version: the one place it is written. CMake's `project(VERSION)`, the package version
/// file (`dbpoolConfigVersion.cmake`), the pkg-config files and the API reference read it from
/// here; CHANGELOG.md has an entry for it. Releases follow CONTRIBUTING.md ("Releasing").
///
/// Compatibility rule: while the major version is 0, a minor release (0.2 -> 0.3) may change the
/// API and a patch release (0.2.0 -> 0.2.1) never does, so `find_package(dbpool 0.2)` accepts
/// 0.2.x only; from 1.0 on, any 1.y is accepted for 1.x.

/// Major version: 0 while the API may still change between minor releases.
#define DBPOOL_VERSION_MAJOR 0
/// Minor version: new features; while the major version is 0, also API changes.
#define DBPOOL_VERSION_MINOR 2
/// Patch version: fixes only, never an API change.
#define DBPOOL_VERSION_PATCH 0
/// The version as text, "MAJOR.MINOR.PATCH" (CMake checks that it matches the numbers above).
#define DBPOOL_VERSION_STRING "0.2.0"
/// The version as one number for `#if`: MAJOR * 10000 + MINOR * 100 + PATCH (0.2.0 is 200).
#define DBPOOL_VERSION \
    (DBPOOL_VERSION_MAJOR * 10000 + DBPOOL_VERSION_MINOR * 100 + DBPOOL_VERSION_PATCH)
