#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "process.hpp"

namespace troupe::test {

namespace {

// Generous: CI also runs the examples under AddressSanitizer.
constexpr auto timeout = std::chrono::seconds(30);

process_result run_stream_pipeline(std::vector<std::string> args) {
  args.insert(args.begin(), bin("stream_pipeline"));
  return run_process(args, timeout);
}

} // namespace

TEST_CASE("the stream_pipeline example prints its expected output",
          "[examples][stream_pipeline]") {
  auto r = run_stream_pipeline({});
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  std::vector<std::string> expected{
    "[PRODUCER] sent 100 items, then closed the stream",
    "[CONSUMERS] received 50 odd squares, each exactly once, sum 166650",
    "[PIPELINE] complete",
  };
  CHECK(lines(r.out) == expected);
  CHECK(r.err.empty());
}

TEST_CASE("the stream_pipeline example streams --items items",
          "[examples][stream_pipeline]") {
  // The odd squares of 1..N: N = 7 gives 1, 9, 25, 49; N = 100,000 gives
  // 50,000 of them, sum 50,000 * 99,999 * 100,001 / 3.
  auto [args, sent, consumed, sum] = GENERATE(
    table<std::vector<std::string>, std::string, std::string, std::string>({
      {{"--items", "7"}, "7", "4", "84"},
      {{"--items=7"}, "7", "4", "84"},
      {{"--items", "100000"}, "100000", "50000", "166666666650000"},
    }));
  CAPTURE(args);
  auto r = run_stream_pipeline(args);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  std::vector<std::string> expected{
    "[PRODUCER] sent " + sent + " items, then closed the stream",
    "[CONSUMERS] received " + consumed + " odd squares, each exactly once, sum "
      + sum,
    "[PIPELINE] complete",
  };
  CHECK(lines(r.out) == expected);
}

TEST_CASE("the stream_pipeline example rejects a bad option with exit code 2",
          "[examples][stream_pipeline]") {
  auto args = GENERATE(values<std::vector<std::string>>({
    {"--items", "0"},
    {"--items", "10000001"},
    {"--items", "abc"},
    {"--bogus"},
  }));
  CAPTURE(args);
  auto r = run_stream_pipeline(args);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  auto option = args.front().substr(0, args.front().find('='));
  CHECK_THAT(r.err, Catch::Contains("'" + option + "'"));
}

} // namespace troupe::test
