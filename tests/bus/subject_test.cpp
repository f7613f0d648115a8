#include "troupe/bus/subject.hpp"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "troupe/runtime/errc.hpp"

namespace troupe::bus {

namespace {

// Returns the error message of `err` (its context string).
std::string message_of(const caf::error& err) {
  return error_text(err);
}

std::vector<uint64_t> sorted_matches(const subject_index& idx,
                                     const std::string& subject) {
  std::vector<uint64_t> ids;
  idx.match(subject, ids);
  std::sort(ids.begin(), ids.end());
  return ids;
}

} // namespace

TEST_CASE("patterns match subjects token by token", "[bus][subject]") {
  struct row {
    const char* pattern;
    const char* subject;
    bool matches;
  };
  const row table[] = {
    // literal tokens
    {"orders.eu.created", "orders.eu.created", true},
    {"orders.eu.created", "orders.eu", false},
    {"orders.eu", "orders.eu.created", false},
    {"a.b", "ab", false},
    {"ab.c", "a.bc", false},
    {"a.bc", "a.b", false},
    // '*': exactly one token
    {"orders.*", "orders.eu", true},
    {"orders.*", "orders", false},
    {"orders.*", "orders.eu.created", false},
    {"*", "orders", true},
    {"*", "orders.eu", false},
    {"*.*", "a.b", true},
    {"a.*.c", "a.b.c", true},
    {"a.*.c", "a.b.d", false},
    {"a.*.c", "a.b.c.d", false},
    // '>': one or more trailing tokens
    {"a.>", "a.b", true},
    {"a.>", "a.b.c", true},
    {"a.>", "a", false},
    {"a.>", "b.c", false},
    {">", "a", true},
    {">", "a.b.c", true},
    {"*.b.>", "a.b.c", true},
    {"*.b.>", "x.b.c.d", true},
    {"*.b.>", "a.b", false},
    {"*.b.>", "a.c.d", false},
    {"a.*.>", "a.b.c", true},
    {"a.*.>", "a.b", false},
  };
  for (auto& r : table) {
    CAPTURE(r.pattern, r.subject);
    REQUIRE(!validate_pattern(r.pattern));
    REQUIRE(!validate_subject(r.subject));
    CHECK(subject_matches(r.pattern, r.subject) == r.matches);
    // The index agrees with the reference.
    subject_index idx;
    idx.insert(r.pattern, 7);
    CHECK(sorted_matches(idx, r.subject)
          == (r.matches ? std::vector<uint64_t>{7} : std::vector<uint64_t>{}));
  }
}

TEST_CASE("malformed subjects are rejected with a message that says why",
          "[bus][subject]") {
  struct row {
    std::string subject;
    const char* why;
  };
  const row table[] = {
    {"", "empty"},
    {"a..b", "token 2 is empty"},
    {".a", "token 1 is empty"},
    {"a.", "token 2 is empty"},
    {"a b", "space at position 2"},
    {"a\tb", "tab at position 2"},
    {"a.\nb", "line feed at position 3"},
    {"a\r", "carriage return at position 2"},
    {"\fa", "form feed at position 1"},
    {"orders.*", "wildcard '*' in token 2"},
    {"orders.>", "wildcard '>' in token 2"},
    {"*", "wildcard '*' in token 1"},
    {std::string(max_subject_size + 1, 'a'), "longer than 4096 bytes (4097)"},
  };
  for (auto& r : table) {
    CAPTURE(r.subject);
    auto err = validate_subject(r.subject);
    REQUIRE(err);
    CHECK(err == errc::invalid_subject);
    CHECK_THAT(message_of(err), Catch::Contains(r.why));
    CHECK_THAT(message_of(err), Catch::StartsWith("invalid subject"));
  }
  CHECK(!validate_subject(std::string(max_subject_size, 'a')));
  CHECK(!validate_subject("orders.eu.created"));
  CHECK(!validate_subject("_INBOX.0123.7"));
  CHECK(!validate_subject("a-b_c.d$e"));
  // Other control characters are bytes of a token, as for NATS.
  CHECK(!validate_subject("a\x01b.\x7f"));
  CHECK(!validate_subject("a\vb"));
}

TEST_CASE("malformed patterns are rejected with a message that says why",
          "[bus][subject]") {
  struct row {
    const char* pattern;
    const char* why;
  };
  const row table[] = {
    {"", "empty"},
    {"a..*", "token 2 is empty"},
    {"a.>.b", "'>' must be the last token"},
    {">.a", "'>' must be the last token"},
    {"a. b", "space at position 3"},
  };
  for (auto& r : table) {
    CAPTURE(r.pattern);
    auto err = validate_pattern(r.pattern);
    REQUIRE(err);
    CHECK(err == errc::invalid_subject);
    CHECK_THAT(message_of(err), Catch::Contains(r.why));
    CHECK_THAT(message_of(err), Catch::StartsWith("invalid pattern"));
  }
  for (auto* ok : {"a", "*", ">", "a.*", "a.>", "*.*.>", "a.*.c"}) {
    CAPTURE(ok);
    CHECK(!validate_pattern(ok));
  }
}

// The cases of nats-server's own subject tests (server/sublist_test.go:
// TestSublistValidLiteralSubjects, TestSublistValidlSubjects,
// TestSublistMatchLiterals), so that troupe and NATS agree.
TEST_CASE("subjects follow NATS's rules: nats-server's test cases",
          "[bus][subject][nats]") {
  struct valid_row {
    const char* x;
    bool literal; // a valid subject to publish to
    bool pattern; // a valid pattern to subscribe to
  };
  const valid_row valid[] = {
    {"foo", true, true},
    {".", false, false},
    {".foo", false, false},
    {"foo.", false, false},
    {"foo..bar", false, false},
    {">.bar", false, false},
    {"foo.>.bar", false, false},
    {"foo.bar.*", false, true},
    {"foo.bar.>", false, true},
    {"*", false, true},
    {">", false, true},
    // Wildcard characters inside a token are literal.
    {"foo*", true, true},
    {"foo**", true, true},
    {"foo.**", true, true},
    {"foo*bar", true, true},
    {"foo.*bar", true, true},
    {"foo*.bar", true, true},
    {"*bar", true, true},
    {"foo>", true, true},
    {"foo.>>", true, true},
    {"foo>bar", true, true},
    {"foo.>bar", true, true},
    {"foo>.bar", true, true},
    {">bar", true, true},
  };
  for (auto& r : valid) {
    CAPTURE(r.x);
    CHECK(!validate_subject(r.x) == r.literal);
    CHECK(!validate_pattern(r.x) == r.pattern);
  }
  struct match_row {
    const char* subject;
    const char* pattern;
    bool matches;
  };
  const match_row matches[] = {
    {"foo", "foo", true},
    {"foo", "bar", false},
    {"foo", "*", true},
    {"foo", ">", true},
    {"foo.bar", ">", true},
    {"foo.bar", "foo.>", true},
    {"foo.bar", "bar.>", false},
    {"stats.test.22", "stats.>", true},
    {"stats.test.22", "stats.*.*", true},
    {"foo.bar", "foo", false},
    {"stats.test.foos", "stats.test.foos", true},
    {"stats.test.foos", "stats.test.foo", false},
    {"stats.test", "stats.test.*", false},
    {"stats.test.foos", "stats.*", false},
    {"stats.test.foos", "stats.*.*.foos", false},
    // Wildcard characters that are not whole tokens match only themselves.
    {"*bar", "*bar", true},
    {"foo*", "foo*", true},
    {"foo*bar", "foo*bar", true},
    {"foo.***.bar", "foo.***.bar", true},
    {">bar", ">bar", true},
    {"foo>", "foo>", true},
    {"foo>bar", "foo>bar", true},
    {"foo.>>>.bar", "foo.>>>.bar", true},
    {"foo.bar", "foo.*-", false},
    {"foo.*-", "foo.*-", true},
    {"foo.bar", "foo.>-", false},
    {"foo.>-", "foo.>-", true},
  };
  for (auto& r : matches) {
    CAPTURE(r.subject, r.pattern);
    REQUIRE(!validate_subject(r.subject));
    REQUIRE(!validate_pattern(r.pattern));
    CHECK(subject_matches(r.pattern, r.subject) == r.matches);
    subject_index idx;
    idx.insert(r.pattern, 1);
    CHECK(sorted_matches(idx, r.subject)
          == (r.matches ? std::vector<uint64_t>{1} : std::vector<uint64_t>{}));
  }
  // No 256-byte cap: a subject as long as a NATS control line allows.
  std::string long_subject;
  while (long_subject.size() + 9 + 3 <= max_subject_size)
    long_subject += "abcdefgh.";
  long_subject += "end";
  CHECK(!validate_subject(long_subject));
}

TEST_CASE("the index finds every matching pattern and forgets erased ones",
          "[bus][subject]") {
  subject_index idx;
  idx.insert("orders.eu.created", 1);
  idx.insert("orders.*.created", 2);
  idx.insert("orders.>", 3);
  idx.insert(">", 4);
  idx.insert("orders.eu", 5);
  idx.insert("*.eu.*", 6);
  CHECK(idx.size() == 6);
  CHECK(sorted_matches(idx, "orders.eu.created")
        == std::vector<uint64_t>{1, 2, 3, 4, 6});
  CHECK(sorted_matches(idx, "orders.eu") == std::vector<uint64_t>{3, 4, 5});
  CHECK(sorted_matches(idx, "orders") == std::vector<uint64_t>{4});
  CHECK(sorted_matches(idx, "users.eu.x") == std::vector<uint64_t>{4, 6});
  SECTION("erasing removes exactly that entry") {
    CHECK(idx.erase("orders.>", 3));
    CHECK_FALSE(idx.erase("orders.>", 3));
    CHECK_FALSE(idx.erase("orders.*.created", 99));
    CHECK_FALSE(idx.erase("no.such.pattern", 1));
    CHECK(idx.size() == 5);
    CHECK(sorted_matches(idx, "orders.eu.created")
          == std::vector<uint64_t>{1, 2, 4, 6});
    CHECK(sorted_matches(idx, "orders.eu") == std::vector<uint64_t>{4, 5});
  }
  SECTION("erasing everything leaves an empty index that still works") {
    CHECK(idx.erase("orders.eu.created", 1));
    CHECK(idx.erase("orders.*.created", 2));
    CHECK(idx.erase("orders.>", 3));
    CHECK(idx.erase(">", 4));
    CHECK(idx.erase("orders.eu", 5));
    CHECK(idx.erase("*.eu.*", 6));
    CHECK(idx.empty());
    CHECK(sorted_matches(idx, "orders.eu.created").empty());
    idx.insert("orders.eu.created", 8);
    CHECK(sorted_matches(idx, "orders.eu.created") == std::vector<uint64_t>{8});
  }
  SECTION("the same pattern may hold several ids") {
    idx.insert("orders.eu", 9);
    CHECK(sorted_matches(idx, "orders.eu")
          == std::vector<uint64_t>{3, 4, 5, 9});
    CHECK(idx.erase("orders.eu", 5));
    CHECK(sorted_matches(idx, "orders.eu") == std::vector<uint64_t>{3, 4, 9});
  }
}

TEST_CASE("the index agrees with subject_matches on random patterns",
          "[bus][subject]") {
  std::mt19937 rng{42};
  const char* tokens[] = {"a", "b", "c", "*", ">"};
  auto pick = [&rng](size_t n) {
    return std::uniform_int_distribution<size_t>{0, n - 1}(rng);
  };
  std::vector<std::string> patterns;
  while (patterns.size() < 300) {
    std::string p;
    auto len = 1 + pick(4);
    for (size_t i = 0; i < len; ++i) {
      auto t = tokens[pick(i + 1 == len ? 5 : 4)]; // '>' only last
      p += (i == 0 ? "" : ".");
      p += t;
    }
    REQUIRE(!validate_pattern(p));
    patterns.push_back(p);
  }
  subject_index idx;
  for (size_t i = 0; i < patterns.size(); ++i)
    idx.insert(patterns[i], i);
  // Erase every third entry, so that erasing and pruning are covered too.
  for (size_t i = 0; i < patterns.size(); i += 3)
    REQUIRE(idx.erase(patterns[i], i));
  for (int n = 0; n < 500; ++n) {
    std::string s;
    auto len = 1 + pick(5);
    for (size_t i = 0; i < len; ++i) {
      s += (i == 0 ? "" : ".");
      s += tokens[pick(3)];
    }
    std::vector<uint64_t> expected;
    for (size_t i = 0; i < patterns.size(); ++i)
      if (i % 3 != 0 && subject_matches(patterns[i], s))
        expected.push_back(i);
    CAPTURE(s);
    CHECK(sorted_matches(idx, s) == expected);
  }
}

} // namespace troupe::bus
