#pragma once

/// dbpool's version as numbers and as a string.
#define DBPOOL_VERSION_MAJOR 0
#define DBPOOL_VERSION_MINOR 1
#define DBPOOL_VERSION_PATCH 0
#define DBPOOL_VERSION_STRING "0.1.0"
