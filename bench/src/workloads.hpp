#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "bench.hpp"

// The workloads of `troupe_bench`. Each one runs in a fresh child process
// (`troupe_bench --one WORKLOAD VARIANT N K`), against one actor system. The
// variants differ only in how that system is built and how top-level actors
// are spawned (`sys.spawn` or `node::spawn`); the actors, their messages and
// the timing below are the same code for all of them.

namespace troupe::bench {

using clock = std::chrono::steady_clock;

/// Tells a `spawner` to message its children.
using go_atom = caf::atom_constant<caf::atom("go")>;

/// Tells a `sender` to send its next batch.
using more_atom = caf::atom_constant<caf::atom("more")>;

/// Records the moment an actor finished a workload and wakes the main thread.
/// Thread-safe.
class finish_line {
public:
  void cross() {
    std::lock_guard<std::mutex> guard{mtx_};
    at_ = clock::now();
    done_ = true;
    cv_.notify_all();
  }

  /// Blocks until `cross()`; returns when it was called.
  clock::time_point wait() {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait(guard, [this] { return done_; });
    return at_;
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  clock::time_point at_;
  bool done_ = false;
};

/// Returns the value of `field` (`VmRSS`, `VmHWM`) in /proc/self/status, in
/// bytes, or -1.
int64_t proc_status_bytes(const char* field);

// -- actors (bench/src/actors.cpp) --------------------------------------------

/// Replies to each `int64_t` with the same value.
caf::behavior pong(caf::event_based_actor* self);

/// Requests `buddy` with 1, 2, ... `rounds`, one request at a time; then
/// crosses `fl`, stops `buddy` and quits.
caf::behavior ping(caf::event_based_actor* self, caf::actor buddy,
                   int64_t rounds, finish_line* fl);

/// Counts `int32_t` messages; after `expected` of them crosses `fl` and quits.
caf::behavior receiver(caf::event_based_actor* self, int64_t expected,
                       finish_line* fl);

/// Sends `count` `int32_t` messages to `dst`, in batches of 1,000 (a message
/// to itself between batches lets other actors run), then quits.
caf::behavior sender(caf::event_based_actor* self, caf::actor dst,
                     int64_t count);

/// Increments `alive` on start, then waits for one message and quits.
caf::behavior waiter(caf::event_based_actor* self, std::atomic<int64_t>* alive);

/// Spawns one `waiter` into each slot of `children` on start; on `go_atom`
/// sends each of them a message and quits.
caf::behavior spawner(caf::event_based_actor* self,
                      std::vector<caf::actor>* children,
                      std::atomic<int64_t>* alive);

// -- workloads ----------------------------------------------------------------

namespace detail {

inline double seconds_between(clock::time_point from, clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// With TROUPE_BENCH_PHASES set, prints when each phase of a spawn workload
// ended (seconds since the start) to stderr.
inline void phase(const char* what, clock::time_point t0) {
  static const bool on = std::getenv("TROUPE_BENCH_PHASES") != nullptr;
  if (on)
    std::fprintf(stderr, "  %-8s %.3f s\n", what,
                 seconds_between(t0, clock::now()));
}

inline void wait_until_alive(const std::atomic<int64_t>& alive, int64_t n) {
  // Sleep, do not spin: this box has 2 cores and the workers need them.
  while (alive.load() < n)
    std::this_thread::sleep_for(std::chrono::microseconds(200));
}

template <class Spawn>
result ping_pong(const job& j, Spawn& spawn) {
  finish_line fl;
  auto t0 = clock::now();
  auto p = spawn(pong);
  spawn(ping, p, j.n, &fl);
  auto t1 = fl.wait();
  return {static_cast<double>(j.n) / seconds_between(t0, t1), 0};
}

template <class Spawn>
result fan_in(const job& j, Spawn& spawn) {
  finish_line fl;
  auto t0 = clock::now();
  auto dst = spawn(receiver, j.n * j.k, &fl);
  for (int32_t i = 0; i < j.k; ++i)
    spawn(sender, dst, j.n);
  auto t1 = fl.wait();
  return {static_cast<double>(j.n * j.k) / seconds_between(t0, t1), 0};
}

// One message per item from one sender to one receiver (`fan-in` with one
// sender), and the peak memory: nothing keeps the sender from filling the
// receiver's mailbox. Raw CAF's side of the `stream` workload.
template <class Spawn>
result stream_messages(const job& j, Spawn& spawn) {
  finish_line fl;
  auto before = proc_status_bytes("VmRSS");
  auto t0 = clock::now();
  auto dst = spawn(receiver, j.n, &fl);
  spawn(sender, dst, j.n);
  auto t1 = fl.wait();
  auto peak = proc_status_bytes("VmHWM");
  return {static_cast<double>(j.n) / seconds_between(t0, t1),
          static_cast<double>(peak - before)};
}

// Spawns from the main thread, one top-level actor each.
template <class Spawn>
result spawn_main(const job& j, caf::actor_system& sys, Spawn& spawn) {
  std::atomic<int64_t> alive{0};
  std::vector<caf::actor> xs(static_cast<size_t>(j.n)); // touched: not counted
  auto before = proc_status_bytes("VmRSS");
  auto t0 = clock::now();
  for (auto& x : xs)
    x = spawn(waiter, &alive);
  phase("spawned", t0);
  wait_until_alive(alive, j.n);
  phase("alive", t0);
  auto peak = proc_status_bytes("VmHWM");
  for (auto& x : xs)
    caf::anon_send(x, int32_t{1});
  phase("sent", t0);
  sys.await_all_actors_done();
  auto t1 = clock::now();
  phase("exited", t0);
  return {seconds_between(t0, t1),
          static_cast<double>(peak - before) / static_cast<double>(j.n)};
}

// Spawns from one actor (the case that makes 'stealing' quadratic).
template <class Spawn>
result spawn_actor(const job& j, caf::actor_system& sys, Spawn& spawn) {
  std::atomic<int64_t> alive{0};
  std::vector<caf::actor> xs(static_cast<size_t>(j.n)); // touched: not counted
  auto before = proc_status_bytes("VmRSS");
  auto t0 = clock::now();
  auto s = spawn(spawner, &xs, &alive);
  wait_until_alive(alive, j.n);
  phase("alive", t0);
  auto peak = proc_status_bytes("VmHWM");
  caf::anon_send(s, go_atom::value);
  sys.await_all_actors_done();
  auto t1 = clock::now();
  phase("exited", t0);
  return {seconds_between(t0, t1),
          static_cast<double>(peak - before) / static_cast<double>(j.n)};
}

} // namespace detail

/// Runs `j` on `sys`; `spawn(fn, xs...)` spawns a top-level actor the way the
/// variant does.
/// @throws std::invalid_argument for an unknown workload.
template <class Spawn>
result run_workload(const job& j, caf::actor_system& sys, Spawn spawn) {
  if (j.workload == "ping-pong")
    return detail::ping_pong(j, spawn);
  if (j.workload == "fan-in")
    return detail::fan_in(j, spawn);
  if (j.workload == "spawn-main")
    return detail::spawn_main(j, sys, spawn);
  if (j.workload == "spawn-actor")
    return detail::spawn_actor(j, sys, spawn);
  if (j.workload == "stream")
    return detail::stream_messages(j, spawn);
  if (j.workload == "stream-reply") // on one scheduler thread (variants)
    return detail::ping_pong(j, spawn);
  throw std::invalid_argument("unknown workload '" + j.workload + "'");
}

} // namespace troupe::bench
