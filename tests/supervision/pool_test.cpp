#include "troupe/supervision/pool.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

#include "troupe/runtime/config.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/node.hpp"

namespace troupe::supervision {

namespace {

using namespace std::chrono_literals;

// Real scheduler; every wait below is bounded by `patience`.
constexpr auto patience = std::chrono::seconds(10);

struct fixture {
  static troupe::config& init(troupe::config& cfg) {
    // Restarts of failed workers log warnings; keep the test output clean.
    spdlog::set_level(spdlog::level::off);
    // Fewer scheduler threads than the blocking test has workers.
    cfg.set("scheduler.max-threads", 2);
    return cfg;
  }
  troupe::config cfg;
  troupe::node host{init(cfg)};
  caf::actor_system& sys = host.system();
};

// Lets `n` threads wait until all of them have arrived, or until `patience`.
class rendezvous {
public:
  explicit rendezvous(size_t n) : n_(n) {}

  // Returns whether all `n` arrived in time.
  bool arrive_and_wait() {
    std::unique_lock<std::mutex> guard{mtx_};
    if (++arrived_ == n_)
      cv_.notify_all();
    return cv_.wait_for(guard, patience, [this] { return arrived_ >= n_; });
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  size_t n_;
  size_t arrived_ = 0;
};

} // namespace

TEST_CASE_METHOD(fixture, "map returns the results in input order",
                 "[actors][pool]") {
  pool p{host, pool_options{4, false}};
  std::vector<int> xs(1000);
  for (int i = 0; i < 1000; ++i)
    xs[static_cast<size_t>(i)] = i;
  auto ys = p.map([](int x) { return x * x; }, xs);
  REQUIRE(ys);
  REQUIRE(ys->size() == 1000);
  for (size_t i = 0; i < ys->size(); ++i)
    CHECK((*ys)[i] == xs[i] * xs[i]);
}

TEST_CASE_METHOD(fixture, "map reports the first failure in input order",
                 "[actors][pool]") {
  pool p{host, pool_options{2, false}};
  auto ys = p.map(
    [](int x) {
      if (x == 3)
        throw std::runtime_error("three");
      return x;
    },
    std::vector<int>{1, 2, 3, 4});
  REQUIRE_FALSE(ys);
  CHECK(ys.error() == troupe::errc::job_failed);
  CHECK(sys.render(ys.error()) == "troupe_error(job_failed, three)");
}

TEST_CASE_METHOD(fixture, "apply_async returns a handle to the result",
                 "[actors][pool]") {
  pool p{host, pool_options{2, false}};
  SECTION("get returns the value") {
    auto r = p.apply_async([] { return std::string{"hello"}; });
    REQUIRE(r);
    auto x = r->get(patience);
    REQUIRE(x);
    CHECK(*x == "hello");
    CHECK(r->ready());
  }
  SECTION("get times out while the job runs, then returns the value") {
    std::promise<void> go;
    auto gate = go.get_future().share();
    auto r = p.apply_async([gate] {
      gate.wait_for(patience);
      return 4;
    });
    REQUIRE(r);
    auto early = r->get(1ms);
    REQUIRE_FALSE(early);
    CHECK(early.error() == troupe::errc::timeout);
    CHECK_FALSE(r->ready());
    go.set_value();
    auto x = r->get(patience);
    REQUIRE(x);
    CHECK(*x == 4);
  }
}

TEST_CASE_METHOD(fixture, "callback and error_callback are each called once",
                 "[actors][pool]") {
  pool p{host, pool_options{2, false}};
  std::atomic<int> values{0};
  std::atomic<int> errors{0};
  std::atomic<int> last_value{0};
  auto ok = p.apply_async([] { return 7; },
                          [&](const int& x) {
                            last_value = x;
                            ++values;
                          },
                          [&](const caf::error&) { ++errors; });
  REQUIRE(ok);
  REQUIRE(ok->get(patience));
  // The callback ran before get returned.
  CHECK(values == 1);
  CHECK(last_value == 7);
  CHECK(errors == 0);
  caf::error seen;
  std::mutex seen_mtx;
  auto bad = p.apply_async([]() -> int { throw std::runtime_error("bad job"); },
                           [&](const int&) { ++values; },
                           [&](const caf::error& err) {
                             std::lock_guard<std::mutex> guard{seen_mtx};
                             seen = err;
                             ++errors;
                           });
  REQUIRE(bad);
  REQUIRE_FALSE(bad->get(patience));
  p.close();
  REQUIRE_FALSE(p.join(patience));
  CHECK(values == 1);
  CHECK(errors == 1);
  std::lock_guard<std::mutex> guard{seen_mtx};
  CHECK(seen == troupe::errc::job_failed);
}

TEST_CASE_METHOD(fixture,
                 "a throwing job reports its error and the pool carries on",
                 "[actors][pool]") {
  // One worker: the later jobs can only finish on its restarted successor.
  pool p{host, pool_options{1, false}};
  auto bad = p.apply_async([]() -> int { throw std::runtime_error("boom"); });
  REQUIRE(bad);
  auto err = bad->get(patience);
  REQUIRE_FALSE(err);
  CHECK(err.error() == troupe::errc::job_failed);
  CHECK(sys.render(err.error()) == "troupe_error(job_failed, boom)");
  for (int i = 0; i < 5; ++i) {
    auto r = p.apply_async([i] { return i + 1; });
    REQUIRE(r);
    auto x = r->get(patience);
    REQUIRE(x);
    CHECK(*x == i + 1);
  }
  // And again: every failure restarts the worker.
  auto bad2 = p.apply_async([]() -> int { throw std::logic_error("again"); });
  REQUIRE(bad2);
  REQUIRE_FALSE(bad2->get(patience));
  auto last = p.map([](int x) { return -x; }, std::vector<int>{1, 2, 3});
  REQUIRE(last);
  CHECK(*last == std::vector<int>{-1, -2, -3});
}

TEST_CASE_METHOD(fixture, "threads may submit to one pool concurrently",
                 "[actors][pool]") {
  pool p{host, pool_options{3, false}};
  constexpr int per_thread = 100;
  std::vector<std::vector<caf::expected<int>>> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        auto r = p.apply_async([t, i] { return static_cast<int>(t) * i; });
        results[t].push_back(r ? r->get(patience) : r.error());
      }
    });
  for (auto& th : threads)
    th.join();
  for (size_t t = 0; t < results.size(); ++t) {
    REQUIRE(results[t].size() == per_thread);
    for (int i = 0; i < per_thread; ++i) {
      auto& r = results[t][static_cast<size_t>(i)];
      REQUIRE(r);
      CHECK(*r == static_cast<int>(t) * i);
    }
  }
}

TEST_CASE_METHOD(fixture, "close stops submissions and join needs close",
                 "[actors][pool]") {
  pool p{host, pool_options{2, false}};
  CHECK(p.join() == errc::pool_running);
  CHECK(p.join(1ms) == errc::pool_running);
  p.close();
  auto r = p.apply_async([] { return 1; });
  REQUIRE_FALSE(r);
  CHECK(r.error() == troupe::errc::closed);
  auto ys = p.map([](int x) { return x; }, std::vector<int>{1});
  REQUIRE_FALSE(ys);
  CHECK(ys.error() == troupe::errc::closed);
  CHECK_FALSE(p.join(patience));
}

TEST_CASE_METHOD(fixture, "join waits for every submitted job",
                 "[actors][pool]") {
  pool p{host, pool_options{2, false}};
  std::atomic<int> done{0};
  for (int i = 0; i < 10; ++i)
    REQUIRE(p.apply_async([&done] {
      std::this_thread::sleep_for(20ms); // a slow job
      return ++done;
    }));
  p.close();
  CHECK_FALSE(p.join(patience));
  CHECK(done == 10);
}

TEST_CASE_METHOD(fixture, "join with a timeout reports jobs still running",
                 "[actors][pool]") {
  pool p{host, pool_options{1, true}};
  std::promise<void> go;
  auto gate = go.get_future().share();
  auto r = p.apply_async([gate] { return gate.wait_for(patience); });
  REQUIRE(r);
  p.close();
  auto err = p.join(1ms);
  CHECK(err == troupe::errc::timeout);
  CHECK(sys.render(err) == "troupe_error(timeout, 1 job(s) still pending)");
  go.set_value();
  CHECK_FALSE(p.join(patience));
  auto x = r->get(patience);
  REQUIRE(x);
  CHECK(*x == std::future_status::ready);
}

TEST_CASE_METHOD(fixture, "void jobs report success or failure",
                 "[actors][pool]") {
  pool p{host, pool_options{2, false}};
  std::atomic<int> runs{0};
  std::atomic<int> values{0};
  std::atomic<int> errors{0};
  auto ok = p.apply_async([&runs] { ++runs; }, [&values] { ++values; },
                          [&errors](const caf::error&) { ++errors; });
  REQUIRE(ok);
  caf::expected<void> x = ok->get(patience);
  CHECK(x);
  CHECK(ok->ready());
  CHECK(runs == 1);
  CHECK(values == 1); // the callback ran before get returned
  auto bad = p.apply_async([] { throw std::runtime_error("void job"); },
                           [&values] { ++values; },
                           [&errors](const caf::error&) { ++errors; });
  REQUIRE(bad);
  auto y = bad->get(patience);
  REQUIRE_FALSE(y);
  CHECK(sys.render(y.error()) == "troupe_error(job_failed, void job)");
  CHECK(values == 1);
  CHECK(errors == 1);
  // Without callbacks, and waiting without a bound (the job is quick).
  auto plain = p.apply_async([&runs] { ++runs; });
  REQUIRE(plain);
  CHECK(plain->get());
  CHECK(runs == 2);
}

TEST_CASE_METHOD(fixture,
                 "terminate fails unfinished jobs and runs no queued one",
                 "[actors][pool]") {
  // One worker, held by a job until `go`; two more jobs wait in the queue.
  auto blocking = GENERATE(false, true);
  CAPTURE(blocking);
  pool p{host, pool_options{1, blocking}};
  std::promise<void> started;
  std::promise<void> go;
  auto gate = go.get_future().share();
  std::atomic<bool> running_returned{false};
  std::atomic<int> queued_runs{0};
  std::atomic<int> values{0};
  std::mutex mtx;
  std::vector<caf::error> errors; // from the error callbacks
  auto on_value = [&values](const int&) { ++values; };
  auto on_error = [&](const caf::error& err) {
    std::lock_guard<std::mutex> guard{mtx};
    errors.push_back(err);
  };
  auto first = p.apply_async(
    [&] {
      started.set_value();
      gate.wait_for(patience);
      running_returned = true;
      return 1;
    },
    on_value, on_error);
  REQUIRE(first);
  REQUIRE(started.get_future().wait_for(patience) == std::future_status::ready);
  std::vector<async_result<int>> queued;
  for (int i = 0; i < 2; ++i) {
    auto r = p.apply_async([&queued_runs] { return ++queued_runs; }, on_value,
                           on_error);
    REQUIRE(r);
    queued.push_back(std::move(*r));
  }
  p.terminate();
  // Every handle is ready at once, the running job's included.
  CHECK(first->ready());
  for (auto& r : queued) {
    CHECK(r.ready());
    auto x = r.get(patience);
    REQUIRE_FALSE(x);
    CHECK(sys.render(x.error())
          == "troupe_error(closed, pool terminated before the job ran)");
  }
  auto x = first->get(patience);
  REQUIRE_FALSE(x);
  CHECK(sys.render(x.error())
        == "troupe_error(closed, pool terminated while the job ran)");
  {
    std::lock_guard<std::mutex> guard{mtx};
    CHECK(errors.size() == 3);
  }
  // Closed for good; join needs no close() and waits for the running job.
  auto late = p.apply_async([] { return 0; });
  REQUIRE_FALSE(late);
  CHECK(late.error() == troupe::errc::closed);
  CHECK(p.join(1ms) == troupe::errc::timeout);
  p.terminate(); // idempotent
  go.set_value();
  CHECK_FALSE(p.join(patience));
  CHECK(running_returned);
  // The running job's value was discarded; the queued jobs never ran.
  CHECK(values == 0);
  CHECK(queued_runs == 0);
  CHECK_FALSE(first->get(patience));
  std::lock_guard<std::mutex> guard{mtx};
  CHECK(errors.size() == 3);
}

TEST_CASE_METHOD(fixture,
                 "the destructor does not wait for a job that does not return",
                 "[actors][pool]") {
  auto blocking = GENERATE(false, true);
  CAPTURE(blocking);
  auto p = std::make_unique<pool>(host, pool_options{1, blocking});
  // The running job outlives the pool: it shares what it uses.
  auto started = std::make_shared<std::promise<void>>();
  auto returned = std::make_shared<std::atomic<bool>>(false);
  std::promise<void> go;
  auto gate = go.get_future().share();
  auto running = p->apply_async([started, returned, gate] {
    started->set_value();
    gate.wait_for(patience);
    *returned = true;
  });
  REQUIRE(running);
  REQUIRE(started->get_future().wait_for(patience)
          == std::future_status::ready);
  auto queued = p->apply_async([] { return 1; });
  REQUIRE(queued);
  auto destroyed = std::async(std::launch::async, [&p] { p.reset(); });
  auto in_time = destroyed.wait_for(patience) == std::future_status::ready;
  // Release the job either way, so a hanging destructor fails the test
  // instead of hanging it.
  auto job_was_running = !*returned;
  go.set_value();
  destroyed.wait();
  CHECK(in_time);
  CHECK(job_was_running);
  auto x = running->get(patience);
  REQUIRE_FALSE(x);
  CHECK(x.error() == troupe::errc::closed);
  auto y = queued->get(patience);
  REQUIRE_FALSE(y);
  CHECK(y.error() == troupe::errc::closed);
  // The abandoned worker exits once its job returns; ~actor_system waits.
}

TEST_CASE_METHOD(fixture,
                 "idle workers pull jobs: none waits behind a slow one",
                 "[actors][pool]") {
  pool p{host, pool_options{2, false}};
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<int> finished; // job ids in the order they finished
  auto record = [&](int id) {
    std::lock_guard<std::mutex> guard{mtx};
    finished.push_back(id);
    cv.notify_all();
    return id;
  };
  // The slow job holds its worker until all 20 fast jobs are done (bounded):
  // they can only get done if the other worker pulls every one of them.
  bool fast_ones_done = false;
  REQUIRE(p.apply_async([&] {
    {
      std::unique_lock<std::mutex> guard{mtx};
      fast_ones_done
        = cv.wait_for(guard, patience, [&] { return finished.size() == 20; });
    }
    return record(-1);
  }));
  for (int i = 0; i < 20; ++i)
    REQUIRE(p.apply_async([&, i] { return record(i); }));
  p.close();
  REQUIRE_FALSE(p.join(patience));
  std::lock_guard<std::mutex> guard{mtx};
  CHECK(fast_ones_done);
  REQUIRE(finished.size() == 21);
  CHECK(finished.back() == -1);
}

TEST_CASE_METHOD(fixture, "no more jobs run at once than the pool's size",
                 "[actors][pool]") {
  pool p{host, pool_options{2, false}};
  CHECK(p.size() == 2);
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};
  auto ys = p.map(
    [&](int x) {
      auto now = ++running;
      auto prev = max_running.load();
      while (now > prev && !max_running.compare_exchange_weak(prev, now)) {
        // prev was updated; retry
      }
      std::this_thread::sleep_for(2ms);
      --running;
      return x;
    },
    std::vector<int>(50, 1));
  REQUIRE(ys);
  CHECK(max_running.load() >= 1);
  CHECK(max_running.load() <= 2);
}

TEST_CASE_METHOD(fixture, "the default size is one worker per core",
                 "[actors][pool]") {
  pool p{host, pool_options{}};
  CHECK(p.size() == std::max(1u, std::thread::hardware_concurrency()));
}

TEST_CASE_METHOD(fixture, "blocking pools run each worker on its own thread",
                 "[actors][pool]") {
  // More workers than the scheduler has threads: all of them are inside a
  // job at once only if each has a thread of its own.
  constexpr size_t n = 6;
  pool p{host, pool_options{n, true}};
  rendezvous all{n};
  std::mutex mtx;
  std::set<std::thread::id> threads;
  auto ys = p.map(
    [&](int) {
      {
        std::lock_guard<std::mutex> guard{mtx};
        threads.insert(std::this_thread::get_id());
      }
      return all.arrive_and_wait();
    },
    std::vector<int>(n, 0));
  REQUIRE(ys);
  CHECK(std::all_of(ys->begin(), ys->end(), [](bool x) { return x; }));
  std::lock_guard<std::mutex> guard{mtx};
  CHECK(threads.size() == n);
  CHECK(threads.count(std::this_thread::get_id()) == 0);
}

TEST_CASE("every supervision error code has a name", "[supervision][errc]") {
  CHECK(to_string(errc::restart_intensity) == "restart_intensity");
  CHECK(to_string(errc::no_such_child) == "no_such_child");
  CHECK(to_string(errc::pool_running) == "pool_running");
  CHECK(to_string(static_cast<errc>(200)) == "errc(200)");
}

} // namespace troupe::supervision
