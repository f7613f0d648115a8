#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include <caf/error.hpp>

#include "troupe/bus/errc.hpp"

// Subjects and subscription patterns of the message bus, NATS-style.
//
// A *subject* names what a message is about: dot-separated tokens such as
// `orders.eu.created`. A *pattern* selects subjects; besides literal tokens
// it may contain the wildcards `*` (exactly one token) and `>` (one or more
// trailing tokens, so only as the last token):
//
//   pattern          matches                      does not match
//   orders.eu.*      orders.eu.created            orders.eu, orders.eu.a.b
//   orders.>         orders.eu, orders.eu.created orders
//   *.eu.>           orders.eu.created            orders.us.created
//   >                every subject
//
// The rules are NATS's, so that NATS clients and troupe agree: not empty, no
// empty token (`a..b`, `.a`, `a.`), no whitespace (space, tab, CR, LF, form
// feed; other bytes, control characters too, may be part of a token), and at
// most `max_subject_size` bytes. Only a whole token is a wildcard: in `a*`,
// `*b`, `a>b` or `>>` the `*` and `>` are literal characters. A wildcard token
// is not allowed in the subject of a published message.

namespace troupe::bus {

/// The longest subject or pattern accepted, in bytes: NATS's default
/// maximum control line, which a subject has to fit in.
constexpr size_t max_subject_size = 4096;

/// Checks that `subject` may be published to: a valid subject without
/// wildcards. Returns `errc::invalid_subject` with a message that names the
/// subject and what is wrong with it, e.g. `invalid subject 'a..b': token 2 is
/// empty`; none if it is valid.
[[nodiscard]] caf::error validate_subject(std::string_view subject);

/// Checks that `pattern` may be subscribed to: a valid subject in which
/// `*` and `>` may appear as whole tokens, `>` only last. Returns
/// `errc::invalid_subject` with a message as `validate_subject` does.
[[nodiscard]] caf::error validate_pattern(std::string_view pattern);

/// Returns whether `pattern` matches `subject`.
/// @pre `validate_pattern(pattern)` and `validate_subject(subject)` are none.
bool subject_matches(std::string_view pattern, std::string_view subject);

/// A set of (pattern, id) entries that finds the ids of every pattern that
/// matches a subject in time proportional to the subject's tokens, not to
/// the number of patterns: a trie of tokens with a branch for `*` and a list
/// for `>` at each level, as in the NATS server's sublist.
///
/// Not thread-safe: callers synchronise (the bus holds a mutex and caches
/// match results per subject).
class subject_index {
public:
  subject_index();
  ~subject_index();

  subject_index(subject_index&&) noexcept;
  subject_index& operator=(subject_index&&) noexcept;

  subject_index(const subject_index&) = delete;
  subject_index& operator=(const subject_index&) = delete;

  /// Adds `id` under `pattern`. Adding the same pair twice stores it twice.
  /// @pre `validate_pattern(pattern)` is none.
  void insert(std::string_view pattern, uint64_t id);

  /// Removes one entry `id` under `pattern`; returns whether there was one.
  /// Branches left empty are freed.
  bool erase(std::string_view pattern, uint64_t id);

  /// Appends to `out` the id of every entry whose pattern matches `subject`,
  /// in no particular order.
  /// @pre `validate_subject(subject)` is none.
  void match(std::string_view subject, std::vector<uint64_t>& out) const;

  /// Returns the number of entries.
  size_t size() const noexcept {
    return size_;
  }

  bool empty() const noexcept {
    return size_ == 0;
  }

private:
  struct level;

  std::unique_ptr<level> root_;
  size_t size_ = 0;
};

} // namespace troupe::bus
