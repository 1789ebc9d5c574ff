// Linked with one object file per public header: reaching main() means every header compiled
// alone and none of them defines a non-inline symbol (that would be a duplicate at link time).
#include <cstdio>

int main() {
    std::printf("dbpool: %d public headers compile on their own\n", DBPOOL_HEADER_COUNT);
    return DBPOOL_HEADER_COUNT > 0 ? 0 : 1;
}
