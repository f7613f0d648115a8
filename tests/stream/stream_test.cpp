#include "troupe/stream/stream.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <catch2/catch.hpp>

#include "troupe/runtime/config.hpp"

namespace troupe::stream {

namespace {

using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif

// Returns a generator of 0, 1, ..., n - 1.
auto count_to(int32_t n) {
  return [i = int32_t{0}, n]() mutable -> std::optional<int32_t> {
    if (i == n)
      return std::nullopt;
    return i++;
  };
}

std::vector<int32_t> iota(int32_t first, int32_t n) {
  std::vector<int32_t> result(static_cast<size_t>(n));
  std::iota(result.begin(), result.end(), first);
  return result;
}

// Everything here runs on the test thread (CAF's test_coordinator), so the
// callbacks may write to the test's variables without a lock.
struct deterministic_fixture {
  static troupe::config& init(troupe::config& cfg) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    return cfg;
  }
  troupe::config cfg;
  caf::actor_system sys{init(cfg)};
  caf::scheduler::test_coordinator& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());

  // How each named actor ended, in the order they ended.
  std::vector<std::string> ended;
  std::map<std::string, caf::error> reasons;

  // Returns a `done` callback that records how `name` ended.
  auto done(std::string name) {
    return [this, name](const caf::error& reason) {
      ended.push_back(name);
      reasons[name] = reason;
    };
  }

  ~deterministic_fixture() {
    sched.run();
  }
};

// Returns whether `err` is a runtime_error whose context mentions `what`.
bool is_failure(const caf::error& err, const std::string& what) {
  return err == caf::sec::runtime_error
         && to_string(err.context()).find(what) != std::string::npos;
}

} // namespace

TEST_CASE_METHOD(deterministic_fixture,
                 "a sink receives every item once and in order",
                 "[actors][stream]") {
  stream_options opts;
  opts.batch_size = 100;
  opts.window = 300;
  auto n = GENERATE(0, 1, 99, 100, 101, 10'000);
  CAPTURE(n);
  std::vector<int32_t> got;
  int64_t produced = 0;
  int64_t max_in_flight = 0;
  auto snk = spawn_sink<int32_t>(
    sys, opts, [&](int32_t x) { got.push_back(x); }, done("sink"));
  spawn_source<int32_t>(
    sys, {snk}, opts,
    [&, gen = count_to(n)]() mutable {
      auto x = gen();
      if (x) {
        ++produced;
        auto in_flight = produced - static_cast<int64_t>(got.size());
        max_in_flight = std::max(max_in_flight, in_flight);
      }
      return x;
    },
    done("source"));
  sched.run();
  CHECK(got == iota(0, n));
  CHECK(max_in_flight <= 300);
  CHECK(ended == std::vector<std::string>{"sink", "source"});
  CHECK(!reasons["sink"]);
  CHECK(!reasons["source"]);
}

TEST_CASE_METHOD(deterministic_fixture, "map and filter stages transform items",
                 "[actors][stream]") {
  stream_options opts;
  opts.batch_size = 16;
  opts.window = 64;
  std::vector<std::string> got;
  // source 1..100 --> square --> odd only --> to string --> sink
  auto snk = spawn_sink<std::string>(
    sys, opts, [&](const std::string& x) { got.push_back(x); }, done("sink"));
  auto to_str = spawn_map<int64_t>(
    sys, {snk}, opts, [](int64_t x) { return "#" + std::to_string(x); },
    done("to_string"));
  auto odd = spawn_filter<int64_t>(
    sys, {to_str}, opts, [](int64_t x) { return x % 2 == 1; }, done("odd"));
  auto square = spawn_map<int32_t>(
    sys, {odd}, opts, [](int32_t x) { return static_cast<int64_t>(x) * x; },
    done("square"));
  auto gen = count_to(100);
  spawn_source<int32_t>(
    sys, {square}, opts,
    [gen]() mutable -> std::optional<int32_t> {
      auto x = gen();
      return x ? std::optional<int32_t>{*x + 1} : std::nullopt;
    },
    done("source"));
  sched.run();
  std::vector<std::string> expected;
  for (int64_t x = 1; x <= 100; x += 2)
    expected.push_back("#" + std::to_string(x * x));
  CHECK(got == expected);
  SECTION("the end of the stream travels down, completion travels up") {
    CHECK(ended
          == std::vector<std::string>{"sink", "to_string", "odd", "square",
                                      "source"});
    for (auto& [name, reason] : reasons) {
      CAPTURE(name);
      CHECK(!reason);
    }
  }
}

TEST_CASE_METHOD(deterministic_fixture,
                 "a stage may emit any number of items per input",
                 "[actors][stream]") {
  stream_options opts;
  opts.batch_size = 7;
  opts.window = 20;
  std::vector<int32_t> got;
  auto snk
    = spawn_sink<int32_t>(sys, opts, [&](int32_t x) { got.push_back(x); });
  // Repeats each x x times: 0 never, 1 once, 2 twice, ...
  auto repeat = spawn_stage<int32_t, int32_t>(
    sys, {snk}, opts, [](int32_t x, std::vector<int32_t>& out) {
      out.insert(out.end(), static_cast<size_t>(x), x);
    });
  spawn_source<int32_t>(sys, {repeat}, opts, count_to(40), done("source"));
  sched.run();
  std::vector<int32_t> expected;
  for (int32_t x = 0; x < 40; ++x)
    expected.insert(expected.end(), static_cast<size_t>(x), x);
  CHECK(got == expected);
  CHECK(ended == std::vector<std::string>{"source"});
  CHECK(!reasons["source"]);
}

TEST_CASE_METHOD(deterministic_fixture,
                 "round-robin gives each item to exactly one consumer",
                 "[actors][stream]") {
  stream_options opts;
  opts.batch_size = 50;
  opts.window = 200;
  opts.policy = fan_out::round_robin;
  constexpr int32_t n = 30'000;
  constexpr size_t k = 3;
  std::vector<std::vector<int32_t>> got(k);
  std::vector<stream_consumer<int32_t>> sinks;
  for (size_t i = 0; i < k; ++i)
    sinks.push_back(spawn_sink<int32_t>(
      sys, opts, [&, i](int32_t x) { got[i].push_back(x); },
      done("sink " + std::to_string(i))));
  spawn_source<int32_t>(sys, sinks, opts, count_to(n), done("source"));
  sched.run();
  std::vector<int32_t> all;
  for (size_t i = 0; i < k; ++i) {
    CAPTURE(i);
    // Each consumer sees its share in order, and a fair share of the items.
    CHECK(std::is_sorted(got[i].begin(), got[i].end()));
    CHECK(got[i].size() >= n / k - opts.batch_size);
    CHECK(got[i].size() <= n / k + opts.batch_size);
    all.insert(all.end(), got[i].begin(), got[i].end());
  }
  std::sort(all.begin(), all.end());
  CHECK(all == iota(0, n)); // every item once: none lost, none twice
  CHECK(ended.size() == k + 1);
  CHECK(ended.back() == "source");
  CHECK(!reasons["source"]);
}

TEST_CASE_METHOD(deterministic_fixture,
                 "broadcast gives every item to every consumer",
                 "[actors][stream]") {
  stream_options opts;
  opts.batch_size = 64;
  opts.window = 256;
  opts.policy = fan_out::broadcast;
  constexpr int32_t n = 5'000;
  constexpr size_t k = 3;
  std::vector<std::vector<int32_t>> got(k);
  std::vector<stream_consumer<int32_t>> sinks;
  for (size_t i = 0; i < k; ++i)
    sinks.push_back(spawn_sink<int32_t>(
      sys, opts, [&, i](int32_t x) { got[i].push_back(x); }));
  // A broadcasting stage between source and sinks.
  auto twice = spawn_map<int32_t>(
    sys, sinks, opts, [](int32_t x) { return 2 * x; }, done("stage"));
  spawn_source<int32_t>(sys, {twice}, opts, count_to(n), done("source"));
  sched.run();
  std::vector<int32_t> expected;
  for (int32_t x = 0; x < n; ++x)
    expected.push_back(2 * x);
  for (size_t i = 0; i < k; ++i) {
    CAPTURE(i);
    CHECK(got[i] == expected);
  }
  CHECK(ended == std::vector<std::string>{"stage", "source"});
}

TEST_CASE_METHOD(deterministic_fixture,
                 "a reply sink answers each item in order",
                 "[actors][stream]") {
  // Seed 003: produce() sends n, consumer() answers '200 OK'.
  stream_options opts;
  opts.batch_size = 4;
  opts.window = 8;
  std::vector<std::string> log;
  auto c = spawn_reply_sink<int32_t>(
    sys, opts,
    [&](int32_t x) {
      log.push_back("consume " + std::to_string(x));
      return "200 OK " + std::to_string(x);
    },
    done("consumer"));
  auto gen = count_to(10);
  spawn_request_source<int32_t, std::string>(
    sys, {c}, opts, gen,
    [&](const std::string& r) { log.push_back("reply " + r); },
    done("producer"));
  sched.run();
  std::vector<std::string> consumed;
  std::vector<std::string> replies;
  for (auto& x : log)
    (x.compare(0, 7, "consume") == 0 ? consumed : replies).push_back(x);
  std::vector<std::string> expected_consumed;
  std::vector<std::string> expected_replies;
  for (int32_t x = 0; x < 10; ++x) {
    expected_consumed.push_back("consume " + std::to_string(x));
    expected_replies.push_back("reply 200 OK " + std::to_string(x));
  }
  CHECK(consumed == expected_consumed);
  CHECK(replies == expected_replies);
  // Each reply arrives after its item was consumed.
  for (int32_t x = 0; x < 10; ++x) {
    auto s = std::to_string(x);
    auto c_at = std::find(log.begin(), log.end(), "consume " + s);
    auto r_at = std::find(log.begin(), log.end(), "reply 200 OK " + s);
    CHECK(c_at < r_at);
  }
  CHECK(ended == std::vector<std::string>{"consumer", "producer"});
}

TEST_CASE_METHOD(
  deterministic_fixture,
  "a consumer that throws ends the whole pipeline with its error",
  "[actors][stream]") {
  stream_options opts;
  opts.batch_size = 10;
  opts.window = 40;
  int32_t good_items = 0;
  auto good = spawn_sink<int32_t>(
    sys, opts, [&](int32_t) { ++good_items; }, done("good"));
  auto bad = spawn_sink<int32_t>(
    sys, opts,
    [](int32_t x) {
      if (x >= 500)
        throw std::runtime_error("cannot take " + std::to_string(x));
    },
    done("bad"));
  auto stage = spawn_map<int32_t>(
    sys, {good, bad}, opts, [](int32_t x) { return x; }, done("stage"));
  spawn_source<int32_t>(sys, {stage}, opts, count_to(1'000'000),
                        done("source"));
  sched.run();
  REQUIRE(ended.size() == 4);
  CHECK(ended.front() == "bad");
  CHECK(is_failure(reasons["bad"], "cannot take 5"));
  for (auto& name : {"good", "stage", "source"}) {
    CAPTURE(name);
    CHECK(reasons[name] == reasons["bad"]);
  }
  CHECK(good_items < 1'000'000);
}

TEST_CASE_METHOD(deterministic_fixture,
                 "a generator that throws ends its consumers",
                 "[actors][stream]") {
  stream_options opts;
  auto snk = spawn_sink<int32_t>(
    sys, opts, [](int32_t) {}, done("sink"));
  auto gen = count_to(1000);
  spawn_source<int32_t>(
    sys, {snk}, opts,
    [gen]() mutable -> std::optional<int32_t> {
      auto x = gen();
      if (x && *x == 700)
        throw std::runtime_error("no item 700");
      return x;
    },
    done("source"));
  sched.run();
  CHECK(ended == std::vector<std::string>{"source", "sink"});
  CHECK(is_failure(reasons["source"], "no item 700"));
  CHECK(reasons["sink"] == reasons["source"]);
}

TEST_CASE_METHOD(deterministic_fixture,
                 "an exit message to the source ends the whole pipeline",
                 "[actors][stream]") {
  stream_options opts;
  opts.batch_size = 10;
  opts.window = 20;
  auto snk = spawn_sink<int32_t>(
    sys, opts, [](int32_t) {}, done("sink"));
  auto stage = spawn_filter<int32_t>(
    sys, {snk}, opts, [](int32_t) { return true; }, done("stage"));
  auto src = spawn_source<int32_t>(sys, {stage}, opts, count_to(1'000'000),
                                   done("source"));
  for (int i = 0; i < 100; ++i)
    sched.run_once();
  REQUIRE(ended.empty()); // still streaming
  caf::anon_send_exit(src, caf::exit_reason::user_shutdown);
  sched.run();
  CHECK(ended == std::vector<std::string>{"source", "stage", "sink"});
  for (auto& [name, reason] : reasons) {
    CAPTURE(name);
    CHECK(reason == caf::exit_reason::user_shutdown);
  }
}

TEST_CASE_METHOD(deterministic_fixture,
                 "a consumer killed mid-stream ends its producer",
                 "[actors][stream]") {
  stream_options opts;
  opts.batch_size = 10;
  opts.window = 20;
  auto snk = spawn_sink<int32_t>(
    sys, opts, [](int32_t) {}, done("sink"));
  spawn_source<int32_t>(sys, {snk}, opts, count_to(1'000'000), done("source"));
  for (int i = 0; i < 20; ++i)
    sched.run_once();
  REQUIRE(ended.empty());
  caf::anon_send_exit(snk.actor(), caf::exit_reason::kill);
  sched.run();
  CHECK(reasons["sink"] == caf::exit_reason::kill);
  CHECK(reasons["source"] == caf::exit_reason::kill);
}

TEST_CASE_METHOD(deterministic_fixture, "a consumer takes one upstream only",
                 "[actors][stream]") {
  stream_options opts;
  auto snk = spawn_sink<int32_t>(
    sys, opts, [](int32_t) {}, done("sink"));
  // Keep the handles: nothing else refers to the source that was refused.
  auto a
    = spawn_source<int32_t>(sys, {snk}, opts, count_to(1'000'000), done("a"));
  auto b
    = spawn_source<int32_t>(sys, {snk}, opts, count_to(1'000'000), done("b"));
  sched.run();
  REQUIRE(ended.size() == 3);
  CHECK(reasons["sink"] == caf::sec::invalid_argument);
  CHECK(reasons["a"] == caf::sec::invalid_argument);
  CHECK(reasons["b"] == caf::sec::invalid_argument);
}

namespace {

// Returns the value of `field` in /proc/self/status in bytes, or -1.
int64_t proc_status_bytes(const char* field) {
  auto* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr)
    return -1;
  char line[256];
  int64_t result = -1;
  auto len = std::strlen(field);
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, field, len) == 0 && line[len] == ':') {
      long long kib = 0;
      if (std::sscanf(line + len + 1, "%lld", &kib) == 1)
        result = static_cast<int64_t>(kib) * 1024;
      break;
    }
  }
  std::fclose(f);
  return result;
}

// Counters shared by a producer and a consumer on different threads, each on
// its own cache line so that counting costs little.
struct flow_counters {
  alignas(64) std::atomic<int64_t> produced{0};
  alignas(64) std::atomic<int64_t> consumed{0};
  alignas(64) std::atomic<int64_t> max_in_flight{0};
  std::atomic<bool> out_of_order{false};
};

} // namespace

TEST_CASE("a fast producer cannot grow a slow consumer's mailbox",
          "[actors][stream]") {
  // 10,000,000 items (1,000,000 under AddressSanitizer) into a consumer that
  // spins per item: about 20 ns against the generator's 1.2-1.5 ns (measured
  // on the 2-core box, Release), so the producer could outrun it more than
  // 10x. The producer measures the items it sent that the consumer has not
  // consumed yet; the window bounds it, and the process's memory stays flat.
  constexpr int64_t n = sanitized ? 1'000'000 : 10'000'000;
  stream_options opts;
  opts.batch_size = 256;
  opts.window = 2048;
  troupe::config cfg;
  caf::actor_system sys{cfg};
  auto rss_before = proc_status_bytes("VmRSS");
  auto counters = std::make_shared<flow_counters>();
  auto snk = spawn_sink<int64_t>(
    sys, opts, [counters, next = int64_t{0}](int64_t x) mutable {
      if (x != next++)
        counters->out_of_order = true;
      // The slow part: a short dependent computation per item.
      volatile uint64_t acc = static_cast<uint64_t>(x);
      for (uint64_t i = 0; i < 20; ++i)
        acc = acc * 31 + i;
      counters->consumed.store(next, std::memory_order_release);
    });
  auto src = spawn_source<int64_t>(
    sys, {snk}, opts,
    [counters, i = int64_t{0}, n]() mutable -> std::optional<int64_t> {
      if (i == n)
        return std::nullopt;
      if (i % 64 == 0) {
        auto in_flight = i - counters->consumed.load(std::memory_order_acquire);
        if (in_flight > counters->max_in_flight.load())
          counters->max_in_flight = in_flight;
      }
      counters->produced.store(i + 1, std::memory_order_relaxed);
      return i++;
    });
  caf::scoped_actor self{sys};
  self->monitor(src);
  caf::error reason;
  bool timed_out = false;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                caf::after(std::chrono::seconds(60)) >>
                  [&] { timed_out = true; });
  auto rss_peak = proc_status_bytes("VmHWM");
  if (timed_out)
    caf::anon_send_exit(src, caf::exit_reason::kill);
  REQUIRE_FALSE(timed_out);
  CHECK(!reason);
  CHECK(counters->consumed.load() == n);
  CHECK_FALSE(counters->out_of_order.load());
  INFO("max in flight: " << counters->max_in_flight.load());
  CHECK(counters->max_in_flight.load() <= opts.window);
  // Unbounded, the consumer's mailbox would hold up to n items (80 MB of
  // int64_t alone); with credit the peak grows by a few MB at most (thread
  // stacks, allocator arenas). ASan's quarantine makes RSS meaningless there.
  if (!sanitized && rss_before > 0 && rss_peak > 0) {
    INFO("peak RSS growth: " << (rss_peak - rss_before) / 1024 << " KiB");
    CHECK(rss_peak - rss_before < 32 * 1024 * 1024);
  }
}

TEST_CASE("a failing consumer on a real scheduler stops the producer",
          "[actors][stream]") {
  troupe::config cfg;
  caf::actor_system sys{cfg};
  stream_options opts;
  auto snk = spawn_sink<int32_t>(sys, opts, [](int32_t x) {
    if (x == 123'456)
      throw std::runtime_error("bad item");
  });
  auto src = spawn_source<int32_t>(sys, {snk}, opts, count_to(1 << 30));
  caf::scoped_actor self{sys};
  self->monitor(src);
  caf::error reason;
  bool timed_out = false;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                caf::after(std::chrono::seconds(30)) >>
                  [&] { timed_out = true; });
  if (timed_out)
    caf::anon_send_exit(src, caf::exit_reason::kill);
  REQUIRE_FALSE(timed_out);
  CHECK(is_failure(reason, "bad item"));
}

} // namespace troupe::stream
