#include "actors/consumer_diff.hpp"

#include <algorithm>

namespace cyme {

namespace {

bool contains(const std::vector<std::string>& xs, const std::string& x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

} // namespace

consumer_diff diff_consumers(const std::vector<std::string>& wanted,
                             const std::vector<std::string>& actual,
                             const std::string& direct) {
  consumer_diff result;
  if (!contains(actual, direct))
    result.to_add.push_back(direct);
  for (auto& q : wanted)
    if (q != direct && !contains(actual, q) && !contains(result.to_add, q))
      result.to_add.push_back(q);
  for (auto& q : actual)
    if (q != direct && !contains(wanted, q) && !contains(result.to_cancel, q))
      result.to_cancel.push_back(q);
  return result;
}

} // namespace cyme
