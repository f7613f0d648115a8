#include "troupe/queue/task_queue.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include "troupe/queue/protocol.hpp"
#include "troupe/runtime/config.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/net.hpp"
#include "troupe/runtime/node.hpp"

#include "gate.hpp"
#include "queue_test_util.hpp"

namespace troupe::queue {

namespace {

using namespace std::chrono_literals;
using queue = task_queue<int64_t, int64_t>;

// Every wait below is bounded by `patience`.
constexpr auto patience = std::chrono::seconds(20);

struct fixture {
  static troupe::config& init(troupe::config& cfg) {
    // Redeliveries and dead letters log warnings; keep the output clean.
    spdlog::set_level(spdlog::level::off);
    cfg.log_level = "off";
    return cfg;
  }
  troupe::config cfg;
  troupe::node node{init(cfg)};

  ~fixture() {
    node.stop();
  }
};

using troupe::test::gate;
using troupe::test::temp_store;

// Takes `n` results from `q`; fails the test on a timeout.
std::vector<task_result<int64_t>> take(queue& q, size_t n) {
  std::vector<task_result<int64_t>> xs;
  while (xs.size() < n) {
    auto r = q.get(patience);
    REQUIRE(r);
    q.task_done(r->id);
    xs.emplace_back(std::move(*r));
  }
  return xs;
}

// Returns what a worker of `int64_t -> int64_t` tasks on `n`, named `name`,
// says when it joins `q` (for tests that speak the protocol directly).
worker_hello hello_to(const queue& q, troupe::node& n, std::string name,
                      uint32_t prefetch) {
  worker_hello hello;
  hello.queue = q.name();
  hello.task_type = troupe::type_name<int64_t>();
  hello.result_type = troupe::type_name<int64_t>();
  hello.node = n.info();
  hello.node.name = std::move(name);
  hello.prefetch = prefetch;
  return hello;
}

queue make_queue(troupe::node& n, queue_options opts = {}) {
  auto q = queue::create(n, std::move(opts));
  REQUIRE(q);
  return std::move(*q);
}

// Puts task `x` and has a worker (window 1) take it and wait at `stuck`
// until the test opens it; then it answers `x * 10`.
void hold_one_task(troupe::node& n, queue& q, gate& stuck, int64_t x) {
  spawn_local_worker<int64_t, int64_t>(
    n, q,
    [&stuck](int64_t y) {
      stuck.pass();
      return y * 10;
    },
    1);
  REQUIRE(q.put(x));
  REQUIRE(stuck.wait_for_waiting(1));
}

// Waits (bounded by `patience`) until `pred(q.stats())` holds; returns
// whether it did.
template <class Pred>
bool stats_reach(queue& q, Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + patience;
  while (!pred(q.stats()))
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    else
      std::this_thread::yield();
  return true;
}

} // namespace

TEST_CASE("every task yields exactly one result - in memory", "[task_queue]") {
  fixture f;
  auto q = make_queue(f.node);
  std::vector<int64_t> xs;
  for (int64_t i = 0; i < 2000; ++i)
    xs.push_back(i);
  auto ids = q.put_all(xs);
  REQUIRE(ids);
  REQUIRE(ids->size() == xs.size());
  for (int i = 0; i < 3; ++i)
    spawn_local_worker<int64_t, int64_t>(
      f.node, q, [](int64_t x) { return x * x; }, 16);
  std::map<uint64_t, int64_t> by_id;
  for (auto& r : take(q, xs.size())) {
    REQUIRE(r.value);
    CHECK(by_id.emplace(r.id, *r.value).second);
  }
  REQUIRE(by_id.size() == xs.size());
  for (size_t i = 0; i < xs.size(); ++i)
    CHECK(by_id[(*ids)[i]] == xs[i] * xs[i]);
  auto st = q.stats();
  CHECK(st.put == xs.size());
  CHECK(st.results == xs.size());
  CHECK(st.duplicates == 0);
  CHECK(st.pending == 0);
  CHECK(st.leased == 0);
  CHECK(st.workers_seen == 3);
}

TEST_CASE(
  "a throwing task is retried - then dead-lettered with its error - the "
  "worker carries on",
  "[task_queue]") {
  fixture f;
  queue_options opts;
  opts.max_attempts = 3;
  opts.retry_backoff = 10ms;
  auto q = make_queue(f.node, opts);
  std::atomic<int> calls_of_13{0};
  spawn_local_worker<int64_t, int64_t>(
    f.node, q,
    [&](int64_t x) -> int64_t {
      if (x == 13) {
        ++calls_of_13;
        throw std::runtime_error("13 is unlucky");
      }
      return x + 1;
    },
    4);
  REQUIRE(q.put_all({12, 13, 14}));
  std::map<int64_t, task_result<int64_t>> results;
  for (auto& r : take(q, 3))
    results.emplace(static_cast<int64_t>(r.id), r);
  REQUIRE(results.size() == 3);
  CHECK(*results[1].value == 13);
  CHECK(*results[3].value == 15);
  auto& failed = results[2];
  REQUIRE_FALSE(failed.value);
  CHECK(failed.value.error() == troupe::errc::job_failed);
  CHECK(error_text(failed.value.error()) == "13 is unlucky");
  CHECK(failed.attempts == 3);
  CHECK(calls_of_13 == 3);
  auto dead = q.dead_letters();
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].id == 2);
  CHECK(dead[0].attempts == 3);
  CHECK(dead[0].error == "13 is unlucky");
  // The worker is still there.
  REQUIRE(q.put(20));
  auto r = q.get(patience);
  REQUIRE(r);
  CHECK(*r->value == 21);
}

TEST_CASE("an expired lease goes to another worker - the late answer is a "
          "dropped duplicate",
          "[task_queue]") {
  fixture f;
  queue_options opts;
  opts.lease = 200ms;
  auto q = make_queue(f.node, opts);
  gate stuck;
  // The first worker holds its task until the test opens the gate.
  hold_one_task(f.node, q, stuck, 7);
  // A second worker joins; after the lease expires it gets the task.
  spawn_local_worker<int64_t, int64_t>(
    f.node, q, [](int64_t x) { return x * 10; }, 1);
  auto r = q.get(patience);
  REQUIRE(r);
  REQUIRE(r->value);
  CHECK(*r->value == 70);
  CHECK(r->attempts == 2);
  stuck.open();
  // The first worker's late answer arrives and is dropped; wait for it.
  auto deadline = std::chrono::steady_clock::now() + patience;
  while (q.stats().duplicates == 0
         && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  auto st = q.stats();
  CHECK(st.duplicates == 1);
  CHECK(st.results == 1);
  CHECK(st.redelivered == 1);
  auto none = q.get(100ms);
  REQUIRE_FALSE(none);
  CHECK(none.error() == troupe::errc::timeout);
}

TEST_CASE("a worker that dies holding tasks has them redelivered",
          "[task_queue]") {
  fixture f;
  auto q = make_queue(f.node);
  // A worker that takes its leases and never answers, speaking the protocol
  // directly; it tells the test how many tasks it holds.
  std::promise<size_t> held;
  auto held_future = held.get_future();
  bool told = false; // only the doomed actor touches it
  auto hello = hello_to(q, f.node, "doomed", 8);
  auto doomed = f.node.system().spawn([&, hello](caf::event_based_actor* self) {
    self->request(q.actor(), patience, tq_join_atom::value, hello)
      .then([](const caf::actor&) {});
    return caf::behavior{
      [&](tq_tasks_atom, const std::vector<task_msg>& xs) {
        if (!told)
          held.set_value(xs.size());
        told = true;
      },
    };
  });
  REQUIRE(q.put_all({1, 2, 3, 4, 5, 6, 7, 8}));
  REQUIRE(held_future.wait_for(patience) == std::future_status::ready);
  CHECK(held_future.get() == 4); // half the window per batch
  caf::anon_send_exit(doomed, caf::exit_reason::kill);
  spawn_local_worker<int64_t, int64_t>(
    f.node, q, [](int64_t x) { return -x; }, 8);
  std::set<int64_t> values;
  for (auto& r : take(q, 8)) {
    REQUIRE(r.value);
    values.insert(*r.value);
  }
  CHECK(values == std::set<int64_t>{-8, -7, -6, -5, -4, -3, -2, -1});
  auto st = q.stats();
  CHECK(st.redelivered >= 4);
  CHECK(st.results == 8);
}

TEST_CASE("a worker whose message registry differs is told which types",
          "[task_queue]") {
  fixture f;
  auto q = make_queue(f.node);
  auto hello = hello_to(q, f.node, "odd", 8);
  hello.node.types.push_back("app.only_on_the_worker");
  hello.node.fingerprint = "another registry";
  caf::scoped_actor self{f.node.system()};
  caf::error err;
  self->request(q.actor(), patience, tq_join_atom::value, hello)
    .receive([](const caf::actor&) {}, [&](caf::error& x) { err = x; });
  REQUIRE(err == troupe::errc::registry_mismatch);
  CHECK_THAT(troupe::error_text(err),
             Catch::Contains("worker odd registered other message types")
               && Catch::Contains("lacks: app.only_on_the_worker"));
}

TEST_CASE("a worker of other types is refused with a message", "[task_queue]") {
  fixture f;
  auto q = make_queue(f.node);
  worker_options opts;
  opts.queue = q.name();
  opts.local_queue = q.actor();
  std::mutex mtx;
  std::string failure;
  auto w = detail::spawn_raw_worker(
    f.node, nullptr, opts, "std::string", "long",
    [](const std::vector<char>&) -> caf::expected<std::vector<char>> {
      return std::vector<char>{};
    },
    [&](worker_event ev, const std::string& text) {
      if (ev == worker_event::failed) {
        std::lock_guard<std::mutex> guard{mtx};
        failure = text;
      }
    });
  // Refused max_refusals (3) times for the same reason, then the worker
  // ends with the master's error, which await_worker returns.
  auto err = await_worker(f.node, w, patience);
  REQUIRE(err == troupe::errc::type_mismatch);
  CHECK_THAT(error_text(err), Catch::Contains("runs tasks std::string -> long")
                                && Catch::Contains("holds long -> long")
                                && Catch::Contains("refused 3 times in a row"));
  // Asked again once it is gone: the same answer, at once.
  CHECK(await_worker(f.node, w, 1s) == troupe::errc::type_mismatch);
  std::lock_guard<std::mutex> guard{mtx};
  CHECK(failure == error_text(err));
}

TEST_CASE("a worker that reaches no master gives up after give_up_after - "
          "await_worker says so",
          "[task_queue]") {
  // A node of its own: a worker dials with its node's network configuration.
  troupe::net_config cfg{troupe::net_config::role::connect};
  cfg.log_level = "off";
  REQUIRE_FALSE(cfg.secure("127.0.0.1"));
  troupe::node host{cfg};
  // Nobody listens on a port that was just bound and let go.
  uint16_t port = 0;
  {
    auto fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port = ntohs(addr.sin_port);
    ::close(fd);
  }
  worker_options opts;
  opts.port = port;
  opts.give_up_after = 500ms;
  auto start = std::chrono::steady_clock::now();
  auto w = spawn_worker<int64_t, int64_t>(host, cfg, opts,
                                          [](int64_t x) { return x; });
  auto err = await_worker(host, w, patience);
  auto took = std::chrono::steady_clock::now() - start;
  host.stop();
  REQUIRE(err == troupe::errc::connect_failed);
  CHECK_THAT(error_text(err),
             Catch::Contains("no master at 127.0.0.1:" + std::to_string(port)
                             + " for 500ms")
               && Catch::Contains("last attempt: cannot reach"));
  CHECK(took >= 450ms);
  CHECK(took < patience);
}

TEST_CASE("a resumed queue's close waits its timeout for workers of the "
          "previous master - one that comes back hears it is closed",
          "[task_queue]") {
  temp_store tmp;
  auto& path = tmp.path;
  queue_options opts;
  opts.store = path;
  {
    fixture f;
    auto q = make_queue(f.node, opts);
    REQUIRE(q.put(1));
    spawn_local_worker<int64_t, int64_t>(f.node, q,
                                         [](int64_t x) { return x; });
    take(q, 1);
    // The node goes down before it closed the queue, like a master killed.
  }
  {
    fixture f;
    auto q = make_queue(f.node, opts);
    REQUIRE(q.resumed().tasks == 1);
    caf::scoped_actor self{f.node.system()};
    auto start = std::chrono::steady_clock::now();
    // The close first, then the join of a worker that comes back: the queue
    // actor handles them in this order.
    auto closing = self->request(q.actor(), patience, caf::close_atom::value,
                                 caf::timespan{2s}, std::vector<uint64_t>{});
    std::mutex mtx;
    bool told = false;
    auto w = spawn_local_worker<int64_t, int64_t>(
      f.node, q, [](int64_t x) { return x; }, 4,
      [&](worker_event ev, const std::string&) {
        std::lock_guard<std::mutex> guard{mtx};
        told = told || ev == worker_event::closed;
      });
    CHECK_FALSE(await_worker(f.node, w, patience));
    {
      std::lock_guard<std::mutex> guard{mtx};
      CHECK(told);
    }
    bool closed = false;
    std::move(closing).receive([&] { closed = true; }, [](caf::error&) {});
    CHECK(closed);
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(took >= 1900ms);
    CHECK(took < patience);
  }
}

TEST_CASE("close: no more puts - workers leave once drained - get says closed",
          "[task_queue]") {
  fixture f;
  auto q = make_queue(f.node);
  std::mutex mtx;
  bool told = false;
  auto w = spawn_local_worker<int64_t, int64_t>(
    f.node, q, [](int64_t x) { return x; }, 4,
    [&](worker_event ev, const std::string&) {
      if (ev == worker_event::closed) {
        std::lock_guard<std::mutex> guard{mtx};
        told = true;
      }
    });
  REQUIRE(q.put(1));
  take(q, 1);
  REQUIRE_FALSE(q.close());
  caf::scoped_actor self{f.node.system()};
  self->wait_for(w);
  {
    std::lock_guard<std::mutex> guard{mtx};
    CHECK(told);
  }
  auto put = q.put(2);
  REQUIRE_FALSE(put);
  CHECK(put.error() == troupe::errc::closed);
  auto got = q.get(patience);
  REQUIRE_FALSE(got);
  CHECK(got.error() == troupe::errc::closed);
}

TEST_CASE("a durable queue resumes after a restart: pending tasks run - taken "
          "results stay taken",
          "[task_queue]") {
  temp_store tmp;
  auto& path = tmp.path;
  queue_options opts;
  opts.store = path;
  std::vector<uint64_t> ids;
  {
    fixture f;
    auto q = make_queue(f.node, opts);
    CHECK(q.resumed().tasks == 0);
    auto put = q.put_all({1, 2, 3, 4, 5});
    REQUIRE(put);
    ids = *put;
    // One worker answers one task; the test takes and acknowledges it.
    gate block;
    spawn_local_worker<int64_t, int64_t>(
      f.node, q,
      [&](int64_t x) {
        if (x != 1)
          block.pass();
        return x * 100;
      },
      1);
    auto r = q.get(patience);
    REQUIRE(r);
    CHECK(*r->value == 100);
    q.task_done(r->id);
    REQUIRE(block.wait_for_waiting(1));
    // The acknowledgement travels with the next get.
    auto none = q.get(10ms);
    CHECK_FALSE(none);
    block.open();
    // The node goes down with four tasks unanswered (one perhaps answered
    // but not taken): like a crash after the last commit.
  }
  {
    fixture f;
    auto q = make_queue(f.node, opts);
    CHECK(q.resumed().tasks == 5);
    CHECK(q.resumed().consumed == 1);
    spawn_local_worker<int64_t, int64_t>(f.node, q,
                                         [](int64_t x) { return x * 100; });
    std::set<int64_t> values;
    for (auto& r : take(q, 4)) {
      REQUIRE(r.value);
      values.insert(*r.value);
    }
    CHECK(values == std::set<int64_t>{200, 300, 400, 500});
    auto none = q.get(100ms);
    CHECK_FALSE(none);
    REQUIRE_FALSE(q.close());
  }
  {
    fixture f;
    auto q = make_queue(f.node, opts);
    CHECK(q.resumed().closed);
    CHECK(q.resumed().consumed == 5);
    CHECK(q.resumed().pending == 0);
  }
  {
    fixture f;
    opts.name = "other";
    auto q = queue::create(f.node, opts);
    REQUIRE_FALSE(q);
    CHECK(q.error() == errc::store_failed);
  }
}

TEST_CASE("a keyed put stores each key once - in memory", "[task_queue]") {
  fixture f;
  auto q = make_queue(f.node);
  auto first = q.put_all({10, 20, 10}, {"a", "b", "a"});
  REQUIRE(first);
  REQUIRE(first->size() == 3);
  auto& xs = *first;
  CHECK(xs[0].added);
  CHECK(xs[1].added);
  CHECK_FALSE(xs[2].added);
  CHECK(xs[2].id == xs[0].id);
  auto again = q.put(30, "b");
  REQUIRE(again);
  CHECK_FALSE(again->added);
  CHECK(again->id == xs[1].id);
  auto fresh = q.put(40, "c");
  REQUIRE(fresh);
  CHECK(fresh->added);
  CHECK(fresh->id == xs[1].id + 1); // a refused key uses up no id
  CHECK(q.stats().put == 3);
  auto empty = q.put(50, "");
  REQUIRE_FALSE(empty);
  CHECK(empty.error() == troupe::errc::invalid_option_value);
  auto mismatch = q.put_all({1, 2}, {"x"});
  REQUIRE_FALSE(mismatch);
  CHECK(mismatch.error() == troupe::errc::invalid_option_value);
  spawn_local_worker<int64_t, int64_t>(f.node, q,
                                       [](int64_t x) { return x + 1; });
  std::map<uint64_t, int64_t> by_id;
  for (auto& r : take(q, 3))
    by_id.emplace(r.id, *r.value);
  CHECK(by_id
        == std::map<uint64_t, int64_t>{
          {xs[0].id, 11}, {xs[1].id, 21}, {fresh->id, 41}});
  CHECK_FALSE(q.get(50ms));
}

TEST_CASE("a keyed put stores each key once - across restarts of a durable "
          "queue",
          "[task_queue]") {
  temp_store tmp;
  auto& path = tmp.path;
  queue_options opts;
  opts.store = path;
  {
    fixture f;
    auto q = make_queue(f.node, opts);
    auto put = q.put_all({1, 2}, {"one", "two"});
    REQUIRE(put);
    CHECK((*put)[0].added);
    CHECK((*put)[1].added);
  }
  {
    // As a master restarted with the same arguments: it puts everything
    // again, and only the missing task is added.
    fixture f;
    auto q = make_queue(f.node, opts);
    CHECK(q.resumed().tasks == 2);
    auto put = q.put_all({100, 200, 3}, {"one", "two", "three"});
    REQUIRE(put);
    CHECK_FALSE((*put)[0].added);
    CHECK_FALSE((*put)[1].added);
    CHECK((*put)[2].added);
    CHECK((*put)[2].id == 3);
    spawn_local_worker<int64_t, int64_t>(f.node, q,
                                         [](int64_t x) { return x * 10; });
    std::set<int64_t> values;
    for (auto& r : take(q, 3))
      values.insert(*r.value);
    // The stored tasks kept their first payloads.
    CHECK(values == std::set<int64_t>{10, 20, 30});
    REQUIRE_FALSE(q.close());
  }
  {
    // A key is remembered after its task's result was taken, too.
    fixture f;
    auto q = make_queue(f.node, opts);
    CHECK(q.resumed().consumed == 3);
    auto again = q.put(1, "one");
    REQUIRE_FALSE(again); // closed
    CHECK(again.error() == troupe::errc::closed);
  }
}

TEST_CASE("a failed task waits out a retry backoff that grows - then it is "
          "dead-lettered",
          "[task_queue]") {
  fixture f;
  queue_options opts;
  opts.max_attempts = 3;
  opts.retry_backoff = 100ms;
  opts.retry_backoff_max = 1h;
  auto q = make_queue(f.node, opts);
  std::mutex mtx;
  std::vector<std::chrono::steady_clock::time_point> calls;
  spawn_local_worker<int64_t, int64_t>(f.node, q, [&](int64_t) -> int64_t {
    std::unique_lock<std::mutex> guard{mtx};
    calls.push_back(std::chrono::steady_clock::now());
    throw std::runtime_error("always fails");
  });
  REQUIRE(q.put(1));
  auto r = q.get(patience);
  REQUIRE(r);
  REQUIRE_FALSE(r->value);
  CHECK(r->attempts == 3);
  std::unique_lock<std::mutex> guard{mtx};
  REQUIRE(calls.size() == 3);
  // Jitter draws each wait from the upper half of 100 ms, then 200 ms: lower
  // bounds only, which a slow machine cannot break.
  CHECK(calls[1] - calls[0] >= 50ms);
  CHECK(calls[2] - calls[1] >= 100ms);
}

TEST_CASE("a task in its retry backoff counts as retrying - a late answer of "
          "its expired lease completes it",
          "[task_queue]") {
  fixture f;
  queue_options opts;
  opts.lease = 200ms;
  opts.retry_backoff = 1h; // the retry never comes within the test
  auto q = make_queue(f.node, opts);
  gate stuck;
  // The first worker holds its task past the lease, until the gate opens.
  hold_one_task(f.node, q, stuck, 7);
  // The second gets the task after the lease expired, and fails it.
  spawn_local_worker<int64_t, int64_t>(
    f.node, q,
    [](int64_t) -> int64_t { throw std::runtime_error("second fails"); }, 1);
  REQUIRE(
    stats_reach(q, [](const queue_stats& st) { return st.retrying == 1; }));
  auto st = q.stats();
  CHECK(st.delivered == 2);
  CHECK(st.pending == 0);
  CHECK(st.leased == 0);
  stuck.open();
  auto r = q.get(patience);
  REQUIRE(r);
  REQUIRE(r->value);
  CHECK(*r->value == 70);
  st = q.stats();
  CHECK(st.retrying == 0);
  CHECK(st.results == 1);
  CHECK(st.delivered == 2);
}

TEST_CASE("every queue error code has a name", "[queue][errc]") {
  CHECK(to_string(errc::no_such_queue) == "no_such_queue");
  CHECK(to_string(errc::store_failed) == "store_failed");
  CHECK(to_string(static_cast<errc>(200)) == "errc(200)");
}

} // namespace troupe::queue
