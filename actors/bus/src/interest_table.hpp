#pragma once

// Private: the interest table, which counts subscription interest by
// (pattern, queue group) and answers which of it matches a subject. The bus
// keeps its local interest in one (and reports its changes to the router),
// the router keeps in one what this node's bus reported, and each link of
// the cluster keeps in one what its peer advertised.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "troupe/bus/router.hpp"
#include "troupe/bus/subject.hpp"

namespace troupe::bus::detail {

/// Counts (pattern, queue group) pairs, e.g. one per subscription, and
/// reports when a pair becomes present (its count rises from 0 to 1) or
/// absent (it falls back to 0). The empty queue group stands for plain
/// subscribers. The present pairs are indexed by pattern (`subject_index`),
/// so the matching questions take time proportional to the subject's
/// tokens: which queue groups have a member for a subject (`match`), whether
/// anything matches it (`matches`).
///
/// A count may go below zero: when additions and removals are reported from
/// different threads, a removal may arrive before the addition it undoes
/// (the router hears of the bus's initial interest and of later changes
/// that way). A pair is present only while its count is above zero.
///
/// Invariants: (1) a pair is in `pairs_` iff its count is not zero; (2) it
/// is in `index_` and `by_id_`, under its `id`, iff its count is above zero;
/// (3) `by_id_.size()` is the number of present pairs.
///
/// Thread-safety: const member functions may run concurrently with each
/// other; anything else needs exclusive access.
class interest_table {
public:
  interest_table();
  ~interest_table();

  interest_table(interest_table&&) noexcept;
  interest_table& operator=(interest_table&&) noexcept;

  interest_table(const interest_table&) = delete;
  interest_table& operator=(const interest_table&) = delete;

  /// Counts one more of (`pattern`, `group`). Returns true if that made the
  /// pair present.
  /// @pre `validate_pattern(pattern)` is none.
  bool add(const std::string& pattern, const std::string& group);

  /// Counts one less of (`pattern`, `group`). Returns true if that made the
  /// pair absent.
  bool remove(const std::string& pattern, const std::string& group);

  /// Returns whether (`pattern`, `group`) is present.
  bool contains(const std::string& pattern, const std::string& group) const;

  /// Appends to `groups` the queue group of each present pair whose pattern
  /// matches `subject`, an empty view for plain interest; a group may be
  /// appended more than once (under several patterns). The views are valid
  /// until the pair is removed.
  /// @pre `validate_subject(subject)` is none.
  void match(std::string_view subject,
             std::vector<std::string_view>& groups) const {
    if (by_id_.empty())
      return;
    auto& ids = scratch_ids();
    index_.match(subject, ids);
    for (auto id : ids)
      groups.emplace_back(by_id_.at(id)->second);
  }

  /// Returns whether a present pair matches `subject`.
  /// @pre `validate_subject(subject)` is none.
  bool matches(std::string_view subject) const {
    if (by_id_.empty())
      return false;
    auto& ids = scratch_ids();
    index_.match(subject, ids);
    return !ids.empty();
  }

  /// Returns the present pairs, ordered by pattern, then queue group.
  std::vector<bus_interest> list() const;

  /// Returns the number of present pairs.
  size_t size() const noexcept {
    return by_id_.size();
  }

  bool empty() const noexcept {
    return by_id_.empty();
  }

  /// Forgets every pair.
  void clear();

private:
  using key = std::pair<std::string, std::string>;

  // Scratch for `subject_index::match`, per thread: readers of one table may
  // run concurrently (publishers routing a message, under a shared lock).
  // `match` and `matches` are inline: every routed message asks them.
  static std::vector<uint64_t>& scratch_ids() {
    thread_local std::vector<uint64_t> ids;
    ids.clear();
    return ids;
  }

  struct entry {
    int64_t count = 0;
    /// The pair's id in `index_`, while present.
    uint64_t id = 0;
  };

  /// Adds `delta` to the count of `k`; returns whether the pair became
  /// present (`delta > 0`) or absent (`delta < 0`).
  bool change(key k, int64_t delta);

  std::map<key, entry> pairs_;
  subject_index index_;
  std::unordered_map<uint64_t, const key*> by_id_;
  uint64_t next_id_ = 1;
};

} // namespace troupe::bus::detail
