#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "process.hpp"

namespace troupe::test {

namespace {

// Generous: CI also runs the examples under AddressSanitizer.
constexpr auto timeout = std::chrono::seconds(30);

// With --max-sleep=2, seed 325 sleeps 1.86, 1.16, 1.96, 1.91 and 0.87 s:
// task 4 starts when task 1 ends, so the tasks take about 2.03 s on four
// workers, but 7.75 s one after the other. The checks below only use the
// times the program prints.
const std::vector<std::string> fast_args{"--seed=325", "--max-sleep=2"};

// The lines of one task, as printed.
struct task_lines {
  size_t run_line = 0;  // index of "Run task i (id)..."
  size_t done_line = 0; // index of "Task i runs x seconds."
  std::string worker;   // the id in "Run task i (id)..."
  double seconds = 0;   // x in "Task i runs x seconds."
  int runs = 0;         // how often "Run task i" appeared
  int dones = 0;        // how often "Task i runs" appeared
};

} // namespace

TEST_CASE("the pool_async example runs seed 001's five tasks on four workers",
          "[examples][pool_async]") {
  std::vector<std::string> argv{bin("pool_async")};
  argv.insert(argv.end(), fast_args.begin(), fast_args.end());
  auto r = run_process(argv, timeout);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 0);
  auto out = lines(r.out);
  INFO(r.out);
  // The seed's lines in its order; 5 tasks print 2 lines each in between.
  REQUIRE(out.size() == 15);
  CHECK(std::regex_match(out[0], std::regex{R"(Parent process \d+\.)"}));
  CHECK(out[12] == "All subprocesses done.");
  auto waiting
    = std::find(out.begin(), out.end(), "Waiting for all subprocesses done...");
  REQUIRE(waiting != out.end());
  CHECK(waiting < out.begin() + 12);
  // Then the callbacks.
  CHECK(out[13] == "callback: task 5 returned 25");
  CHECK(out[14]
        == "error_callback: task 6 failed: "
           "troupe_error(job_failed, task 6 gave up)");
  // Replay the task lines in print order: a worker prints "Run task" just
  // before a task and "Task ... runs" just after it, before it takes the next
  // job. So a task printed as ended before another was printed as started
  // really ended first, and taking each start as the latest end printed
  // before it gives times no later than the real ones.
  std::regex run_re{R"(Run task (\d) \((\d+)\)\.\.\.)"};
  std::regex done_re{R"(Task (\d) runs (\d+\.\d\d) seconds\.)"};
  std::map<int, task_lines> tasks;
  std::map<int, double> started_at;
  std::set<std::string> running_workers;
  std::set<std::string> workers;
  size_t running = 0;
  size_t max_running = 0;
  size_t finished = 0;
  size_t finished_before_task_4 = 0;
  double now = 0;
  double schedule = 0; // when the last task ended
  double sum = 0;
  for (size_t i = 1; i < 12; ++i) {
    std::smatch m;
    if (out[i] == *waiting)
      continue;
    if (std::regex_match(out[i], m, run_re)) {
      auto& t = tasks[std::stoi(m[1])];
      t.run_line = i;
      t.worker = m[2];
      ++t.runs;
      // A worker runs one task at a time.
      CHECK(running_workers.insert(t.worker).second);
      workers.insert(t.worker);
      started_at[std::stoi(m[1])] = now;
      max_running = std::max(max_running, ++running);
      if (m[1] == "4")
        finished_before_task_4 = finished;
    } else if (std::regex_match(out[i], m, done_re)) {
      auto id = std::stoi(m[1]);
      auto& t = tasks[id];
      t.done_line = i;
      t.seconds = std::stod(m[2]);
      ++t.dones;
      REQUIRE(t.runs == 1); // ended after it started
      running_workers.erase(t.worker);
      --running;
      ++finished;
      now = std::max(now, started_at[id] + t.seconds);
      schedule = std::max(schedule, now);
      sum += t.seconds;
    } else {
      FAIL("unexpected line: " << out[i]);
    }
  }
  // All five ran, once each, and no more than four at a time: task 4 only
  // started once one of tasks 0-3 had ended.
  REQUIRE(tasks.size() == 5);
  for (auto& [id, t] : tasks) {
    CAPTURE(id);
    CHECK(t.runs == 1);
    CHECK(t.dones == 1);
    CHECK(t.run_line < t.done_line);
    CHECK(t.seconds >= 0);
    CHECK(t.seconds < 3.0); // --max-sleep=2, plus a lot of slack
  }
  CHECK(max_running <= 4);
  CHECK(finished_before_task_4 >= 1);
  CHECK(workers.size() <= 4); // four threads, reused
  // The wall time is the schedule's, not the sum of the sleeps: bounds with
  // wide margins for start-up, shutdown and sanitizers, no benchmark.
  auto elapsed = std::chrono::duration<double>(r.elapsed).count();
  CAPTURE(elapsed, schedule, sum);
  CHECK(elapsed >= schedule - 0.05); // the printed times are rounded
  CHECK(elapsed < schedule + 3.5);
  CHECK(sum > schedule + 3.5); // so the bound above rules out the sum
}

TEST_CASE("the pool_async example rejects a negative --max-sleep",
          "[examples][pool_async]") {
  auto r = run_process({bin("pool_async"), "--max-sleep=-1"}, timeout);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--max-sleep") != std::string::npos);
  CHECK(r.out.empty());
}

} // namespace troupe::test
