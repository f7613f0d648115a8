// The interest table (see interest_table.hpp).

#include "interest_table.hpp"

namespace troupe::bus::detail {

interest_table::interest_table() = default;

interest_table::~interest_table() = default;

interest_table::interest_table(interest_table&&) noexcept = default;

interest_table& interest_table::operator=(interest_table&&) noexcept = default;

bool interest_table::add(const std::string& pattern, const std::string& group) {
  return change({pattern, group}, 1);
}

bool interest_table::remove(const std::string& pattern,
                            const std::string& group) {
  return change({pattern, group}, -1);
}

bool interest_table::contains(const std::string& pattern,
                              const std::string& group) const {
  auto i = pairs_.find({pattern, group});
  return i != pairs_.end() && i->second.count > 0;
}

std::vector<bus_interest> interest_table::list() const {
  std::vector<bus_interest> out;
  out.reserve(by_id_.size());
  for (auto& [k, e] : pairs_)
    if (e.count > 0)
      out.push_back({k.first, k.second});
  return out;
}

void interest_table::clear() {
  pairs_.clear();
  index_ = subject_index{};
  by_id_.clear();
}

bool interest_table::change(key k, int64_t delta) {
  auto i = pairs_.emplace(std::move(k), entry{}).first;
  auto& e = i->second;
  bool was = e.count > 0;
  e.count += delta;
  bool is = e.count > 0;
  if (is && !was) {
    e.id = next_id_++;
    index_.insert(i->first.first, e.id);
    by_id_.emplace(e.id, &i->first);
  } else if (was && !is) {
    index_.erase(i->first.first, e.id);
    by_id_.erase(e.id);
  }
  if (e.count == 0)
    pairs_.erase(i);
  return is != was;
}

} // namespace troupe::bus::detail
