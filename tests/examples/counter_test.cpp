#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "process.hpp"

namespace troupe::test {

namespace {

// Generous: CI also runs the examples under AddressSanitizer.
constexpr auto timeout = std::chrono::seconds(30);

} // namespace

TEST_CASE(
  "the counter example prints the adders - then the total 40 by default",
  "[examples][counter]") {
  auto r = run_process({bin("counter")}, timeout);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  std::vector<std::string> expected{
    "adder 0 adds 1 x 10",
    "adder 1 adds 3 x 10",
    "total: 40",
  };
  CHECK(lines(r.out) == expected);
}

TEST_CASE("the counter example loses no update with 1000 adders of 100 rounds",
          "[examples][counter]") {
  // The total is rounds * adders^2 = 100 * 1000^2. Several runs, since a lost
  // update would show up only sometimes.
  for (int run = 1; run <= 3; ++run) {
    CAPTURE(run);
    auto r = run_process(
      {bin("counter"), "--adders", "1000", "--rounds", "100"}, timeout);
    REQUIRE_FALSE(r.timed_out);
    CHECK(r.exit_code == 0);
    // More than 10 adders: no line per adder, only the total.
    CHECK(lines(r.out) == std::vector<std::string>{"total: 100000000"});
  }
}

TEST_CASE("the counter example rejects a bad option with exit code 2",
          "[examples][counter]") {
  auto args = GENERATE(values<std::vector<std::string>>({
    {"--adders", "0"},
    {"--adders", "-3"},
    {"--rounds", "-1"},
    {"--rounds", "x"},
  }));
  CAPTURE(args);
  args.insert(args.begin(), bin("counter"));
  auto r = run_process(args, timeout);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  CHECK_THAT(r.err, Catch::Contains("'" + args[1] + "'"));
}

} // namespace troupe::test
