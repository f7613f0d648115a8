#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "process.hpp"

namespace troupe::test {

namespace {

// Returns the thread id T if `line` is `greeting (thread T)`, otherwise "".
// (No std::regex: GCC 12 warns inside it under the sanitizers.)
std::string thread_of(const std::string& line, const std::string& greeting) {
  auto prefix = greeting + " (thread ";
  if (line.size() < prefix.size() + 2
      || line.compare(0, prefix.size(), prefix) != 0 || line.back() != ')')
    return {};
  auto id = line.substr(prefix.size(), line.size() - prefix.size() - 1);
  bool digits = std::all_of(id.begin(), id.end(),
                            [](char c) { return c >= '0' && c <= '9'; });
  return digits ? id : std::string{};
}

} // namespace

TEST_CASE("the async_hello example waits twice at once on one thread",
          "[examples][async_hello]") {
  auto r = run_process({bin("async_hello")}, std::chrono::seconds(30));
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  auto xs = lines(r.out);
  CAPTURE(r.out);
  REQUIRE(xs.size() == 4);
  std::vector<std::string> threads;
  for (size_t i = 0; i < xs.size(); ++i) {
    CAPTURE(i);
    threads.push_back(
      thread_of(xs[i], i < 2 ? "Hello world!" : "Hello again!"));
    REQUIRE_FALSE(threads.back().empty());
  }
  // One scheduler thread runs both actors.
  CHECK(threads == std::vector<std::string>(4, threads.front()));
  // Both one-second waits overlap: about 1 s in all, not 2 s. This checks
  // concurrency, not speed, hence the wide margin.
  CHECK(r.elapsed >= std::chrono::milliseconds(900));
  CHECK(r.elapsed < std::chrono::milliseconds(1900));
}

} // namespace troupe::test
