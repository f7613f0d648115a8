#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "process.hpp"

namespace troupe::test {

namespace {

// Generous: CI also runs the examples under AddressSanitizer.
constexpr auto timeout = std::chrono::seconds(30);

process_result run_producer_consumer(std::vector<std::string> args) {
  args.insert(args.begin(), bin("producer_consumer"));
  return run_process(args, timeout);
}

} // namespace

TEST_CASE("the producer_consumer example prints the seed's output by default",
          "[examples][producer_consumer]") {
  auto r = run_producer_consumer({});
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  std::vector<std::string> expected{
    "[PRODUCER] Producing 1...",          "[CONSUMER] Consuming 1...",
    "[PRODUCER] Consumer return: 200 OK", "[PRODUCER] Producing 2...",
    "[CONSUMER] Consuming 2...",          "[PRODUCER] Consumer return: 200 OK",
    "[PRODUCER] Producing 3...",          "[CONSUMER] Consuming 3...",
    "[PRODUCER] Consumer return: 200 OK", "[PRODUCER] Producing 4...",
    "[CONSUMER] Consuming 4...",          "[PRODUCER] Consumer return: 200 OK",
    "[PRODUCER] Producing 5...",          "[CONSUMER] Consuming 5...",
    "[PRODUCER] Consumer return: 200 OK",
  };
  CHECK(lines(r.out) == expected);
}

TEST_CASE("the producer_consumer example produces --items items",
          "[examples][producer_consumer]") {
  auto args = GENERATE(values<std::vector<std::string>>({
    {"--items", "3"},
    {"--items=3"},
  }));
  CAPTURE(args);
  auto r = run_producer_consumer(args);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  std::vector<std::string> expected;
  for (int n = 1; n <= 3; ++n) {
    auto x = std::to_string(n);
    expected.push_back("[PRODUCER] Producing " + x + "...");
    expected.push_back("[CONSUMER] Consuming " + x + "...");
    expected.push_back("[PRODUCER] Consumer return: 200 OK");
  }
  CHECK(lines(r.out) == expected);
}

TEST_CASE("the producer_consumer example rejects a bad option with exit code 2",
          "[examples][producer_consumer]") {
  auto args = GENERATE(values<std::vector<std::string>>({
    {"--items", "0"},
    {"--items", "-1"},
    {"--items", "abc"},
    {"--items=0"},
    {"--items"},
    {"--bogus"},
  }));
  CAPTURE(args);
  auto r = run_producer_consumer(args);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  // The message names the option, as written without its value.
  auto option = args.front().substr(0, args.front().find('='));
  CHECK_THAT(r.err, Catch::Contains("'" + option + "'"));
}

TEST_CASE("the producer_consumer example's --help lists --items",
          "[examples][producer_consumer]") {
  auto r = run_producer_consumer({"--help"});
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("--items"));
  CHECK(r.err.empty());
}

} // namespace troupe::test
