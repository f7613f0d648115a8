// The stream workloads for troupe (troupe::stream) and for the ring
// (two threads, no actors). Raw CAF's side is in workloads.hpp.
//
//   stream        source --batches of int32_t--> sink (sums them)
//                        <--------credit-------
//   stream-reply  request source --batches of int32_t--> reply sink
//                                <--"200 OK" per item---  (one thread)

#include "streams.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <caf/error.hpp>

#include "troupe/runtime/node.hpp"
#include "troupe/stream/stream.hpp"

#include "workloads.hpp"

namespace troupe::bench {

namespace {

using troupe::stream::spawn_reply_sink;
using troupe::stream::spawn_request_source;
using troupe::stream::spawn_sink;
using troupe::stream::spawn_source;
using troupe::stream::stream_options;

// Returns a generator of 0, 1, ..., n - 1 as int32_t (wrapping past 2^31).
auto count_to(int64_t n) {
  return [i = int64_t{0}, n]() mutable -> std::optional<int32_t> {
    if (i == n)
      return std::nullopt;
    return static_cast<int32_t>(i++);
  };
}

int64_t sum_to(int64_t n) {
  int64_t result = 0;
  for (int64_t i = 0; i < n; ++i)
    result += static_cast<int32_t>(i);
  return result;
}

// source -> sink with troupe's default options (batches of 256, a window of
// 4,096 items); the time runs until the sink has consumed the last item.
result stream_items(const job& j, troupe::node& n) {
  finish_line fl;
  caf::error failure;
  int64_t total = 0; // the sink's; read after fl.wait()
  stream_options opts;
  auto before = proc_status_bytes("VmRSS");
  auto t0 = clock::now();
  auto snk = spawn_sink<int32_t>(
    n, opts, [&total](int32_t x) { total += x; },
    [&](const caf::error& reason) {
      failure = reason;
      fl.cross();
    });
  spawn_source<int32_t>(n, {snk}, opts, count_to(j.n));
  auto t1 = fl.wait();
  auto peak = proc_status_bytes("VmHWM");
  if (failure)
    throw std::runtime_error("stream failed: " + to_string(failure));
  if (total != sum_to(j.n))
    throw std::runtime_error("stream lost items");
  return {static_cast<double>(j.n) / detail::seconds_between(t0, t1),
          static_cast<double>(peak - before)};
}

// The seed's generator pair: each item answered with "200 OK", in batches;
// the time runs until the producer has seen every reply and the stream ended.
result stream_replies(const job& j, troupe::node& n) {
  finish_line fl;
  caf::error failure;
  int64_t ok = 0; // the source's; read after fl.wait()
  stream_options opts;
  const std::string ok_str{"200 OK"};
  auto t0 = clock::now();
  auto c
    = spawn_reply_sink<int32_t>(n, opts, [&ok_str](int32_t) { return ok_str; });
  spawn_request_source<int32_t, std::string>(
    n, {c}, opts, count_to(j.n),
    [&ok, &ok_str](const std::string& r) {
      if (r == ok_str)
        ++ok;
    },
    [&](const caf::error& reason) {
      failure = reason;
      fl.cross();
    });
  auto t1 = fl.wait();
  if (failure)
    throw std::runtime_error("stream failed: " + to_string(failure));
  if (ok != j.n)
    throw std::runtime_error("stream lost replies");
  return {static_cast<double>(j.n) / detail::seconds_between(t0, t1), 0};
}

// A bounded single-producer single-consumer queue on a ring of slots, the
// usual lock-free design: each side owns one index and keeps a cached copy
// of the other's, so the two cores share a cache line only when the cached
// copy runs out. Thread-safe for exactly one pushing and one popping thread.
template <class T>
class spsc_ring {
public:
  /// @pre `capacity` is a power of two.
  explicit spsc_ring(size_t capacity) : slots_(capacity), mask_(capacity - 1) {
    // nop
  }

  bool try_push(const T& x) {
    auto tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_cache_ == slots_.size()) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (tail - head_cache_ == slots_.size())
        return false;
    }
    slots_[tail & mask_] = x;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  bool try_pop(T& x) {
    auto head = head_.load(std::memory_order_relaxed);
    if (head == tail_cache_) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (head == tail_cache_)
        return false;
    }
    x = slots_[head & mask_];
    head_.store(head + 1, std::memory_order_release);
    return true;
  }

private:
  std::vector<T> slots_;
  size_t mask_;
  alignas(64) std::atomic<uint64_t> head_{0}; // written by the consumer
  alignas(64) uint64_t tail_cache_ = 0;       // the consumer's copy
  alignas(64) std::atomic<uint64_t> tail_{0}; // written by the producer
  alignas(64) uint64_t head_cache_ = 0;       // the producer's copy
};

// Waits a little: spins, and yields the core after a while (the box has two
// cores and other work).
void backoff(int& spins) {
  if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    spins = 0;
    std::this_thread::yield();
  }
}

} // namespace

result run_troupe_stream(const job& j, troupe::node& n) {
  if (j.workload == "stream")
    return stream_items(j, n);
  return stream_replies(j, n);
}

result run_ring(const job& j) {
  if (j.workload != "stream")
    throw std::invalid_argument("the ring runs only the stream workload");
  auto before = proc_status_bytes("VmRSS");
  auto t0 = clock::now();
  spsc_ring<int32_t> ring{4096};
  int64_t total = 0;
  std::thread consumer{[&] {
    int spins = 0;
    int32_t x = 0;
    for (int64_t i = 0; i < j.n; ++i) {
      while (!ring.try_pop(x))
        backoff(spins);
      total += x;
    }
  }};
  std::thread producer{[&] {
    int spins = 0;
    auto gen = count_to(j.n);
    while (auto x = gen())
      while (!ring.try_push(*x))
        backoff(spins);
  }};
  producer.join();
  consumer.join();
  auto t1 = clock::now();
  auto peak = proc_status_bytes("VmHWM");
  if (total != sum_to(j.n))
    throw std::runtime_error("ring lost items");
  return {static_cast<double>(j.n) / detail::seconds_between(t0, t1),
          static_cast<double>(peak - before)};
}

} // namespace troupe::bench
