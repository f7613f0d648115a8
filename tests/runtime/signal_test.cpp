// SIGINT/SIGTERM stop a troupe program: its actors are told to exit and the
// process exits 0 within a second.

#include <chrono>
#include <csignal>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "process.hpp"

namespace troupe {

namespace {

using namespace std::chrono_literals;

struct stopped {
  test::process_result res;
  std::chrono::steady_clock::duration took; // from the signal to the exit
};

// Starts the probe with `args`, waits until it is ready, sends `sig` and
// waits (bounded) for the exit.
stopped stop_probe(std::vector<std::string> args, int sig) {
  args.insert(args.begin(), test::bin("troupe_signal_probe"));
  test::child_process p{args};
  REQUIRE(p.wait_for_stdout("ready\n", 30s));
  auto signalled = std::chrono::steady_clock::now();
  p.send_signal(sig);
  auto res = p.wait(10s);
  return {res, std::chrono::steady_clock::now() - signalled};
}

} // namespace

TEST_CASE("SIGINT and SIGTERM stop a troupe program whose work is complete "
          "with exit code 0",
          "[runtime][signals]") {
  auto sig = GENERATE(SIGINT, SIGTERM);
  INFO("signal " << sig);
  auto [res, took] = stop_probe({"--result=0"}, sig);
  CHECK_FALSE(res.timed_out);
  CHECK(res.term_signal == 0);
  CHECK(res.exit_code == 0);
  CHECK(took < 1s);
  CHECK(res.err.find(sig == SIGINT ? "SIGINT: stopping the node"
                                   : "SIGTERM: stopping the node")
        != std::string::npos);
}

TEST_CASE("a program whose work is not complete exits 130 after SIGINT and "
          "143 after SIGTERM, as shells report",
          "[runtime][signals]") {
  auto sig = GENERATE(SIGINT, SIGTERM);
  INFO("signal " << sig);
  auto [res, took] = stop_probe({"--result=3"}, sig);
  CHECK_FALSE(res.timed_out);
  CHECK(res.term_signal == 0);
  CHECK(res.exit_code == 128 + sig);
}

TEST_CASE("an actor that ignores the stop does not keep the process alive",
          "[runtime][signals]") {
  auto [res, took]
    = stop_probe({"--stubborn", "--troupe.shutdown-timeout", "200ms"}, SIGTERM);
  CHECK_FALSE(res.timed_out);
  // Cut short: the shell's code for a process SIGTERM ended.
  CHECK(res.exit_code == 143);
  CHECK(took >= 200ms); // it did wait for the actor first
  CHECK(took < 1s);
  CHECK(res.err.find("1 actor(s) still running 200ms after the stop signal")
        != std::string::npos);
}

TEST_CASE("--help exits 0 - a bad option exits 2 and names it",
          "[runtime][signals]") {
  auto help
    = test::run_process({test::bin("troupe_signal_probe"), "--help"}, 30s);
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("--stubborn") != std::string::npos);
  CHECK(help.out.find("--troupe.shutdown-timeout") != std::string::npos);
  auto bad
    = test::run_process({test::bin("troupe_signal_probe"), "--nope"}, 30s);
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("unknown option '--nope'") != std::string::npos);
}

} // namespace troupe
