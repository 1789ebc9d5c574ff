// Must compile: the safe counterparts of the compile_fail cases (the check of the checker).
#include <dbpool/mysql/result_set.hpp>

#include <string>
#include <string_view>

dbpool::mysql::ResultSet make();

std::string name() {
    auto row = make()[0];
    const std::string_view view = row.get<std::string_view>("name");
    std::string all(view);
    for (auto each : make())
        all += each.get<std::string>(0);
    const dbpool::mysql::ResultSet rows = make();
    for (const auto& each : rows)
        all += std::string(each.get<std::string_view>(0));
    return all + make()[0].get<std::string>("name") + make().scalar<std::string>();
}
