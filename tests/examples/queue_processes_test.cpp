#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "process.hpp"

namespace troupe::test {

namespace {

// Returns the index of the first line equal to `x`, or -1.
long index_of(const std::vector<std::string>& xs, const std::string& x) {
  auto i = std::find(xs.begin(), xs.end(), x);
  return i == xs.end() ? -1L : static_cast<long>(i - xs.begin());
}

// Returns the index of the first line that is `prefix` plus a number, or -1.
long index_of_numbered(const std::vector<std::string>& xs,
                       const std::string& prefix) {
  auto i = std::find_if(xs.begin(), xs.end(), [&](const std::string& x) {
    return x.size() > prefix.size() && x.compare(0, prefix.size(), prefix) == 0
           && std::all_of(x.begin() + static_cast<long>(prefix.size()), x.end(),
                          [](char c) { return c >= '0' && c <= '9'; });
  });
  return i == xs.end() ? -1L : static_cast<long>(i - xs.begin());
}

} // namespace

TEST_CASE(
  "the queue_processes example hands A - B and C to the reader in order",
  "[examples][queue_processes]") {
  // Writer and reader run concurrently, so their lines interleave differently
  // from run to run; only the order that messages imply is fixed.
  for (int run = 1; run <= 3; ++run) {
    CAPTURE(run);
    auto r = run_process({bin("queue_processes")}, std::chrono::seconds(30));
    REQUIRE_FALSE(r.timed_out);
    CHECK(r.exit_code == 0);
    auto xs = lines(r.out);
    CAPTURE(r.out);
    REQUIRE(xs.size() == 9);
    auto write = index_of_numbered(xs, "Process to write: ");
    auto read = index_of_numbered(xs, "Process to read: ");
    CHECK(write >= 0);
    CHECK(read >= 0);
    long last_put = write;
    long last_get = read;
    for (std::string x : {"A", "B", "C"}) {
      CAPTURE(x);
      auto put = index_of(xs, "Put " + x + " to queue...");
      auto get = index_of(xs, "Get " + x + " from queue.");
      CHECK(put > last_put); // puts in order, after the writer's first line
      CHECK(get > last_get); // gets in order, after the reader's first line
      CHECK(get > put);      // nothing is got before it was put
      last_put = put;
      last_get = get;
    }
    CHECK(xs.back() == "Queue closed, reader exits.");
  }
}

} // namespace troupe::test
