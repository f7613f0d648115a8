#include "troupe/bus/bus.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/deep_to_string.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <spdlog/spdlog.h>

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/node.hpp"

// How a message travels from `publish` to a callback:
//
//   publish --(this thread's snapshot cache)--> matching subscriptions
//     --push: lock, append the message's bytes to the buffer, unlock-->
//   subscription buffer --(only when it was idle: one CAF message)-->
//   drainer actor --drain: swap the whole buffer out at once, then copy
//     each message into one reused bus_message and run the callback on it
//
// The drainer is the only reader of a buffer and runs one batch at a time,
// so a subscription's callback never runs concurrently with itself. It runs
// at most `max_per_turn` messages per turn and then sends itself another
// drain message, so that a busy subscription does not hold a scheduler
// thread forever.

namespace troupe::bus {

namespace detail {

uint64_t bus_type_tag(const char* mangled) {
  // FNV-1a, 64 bit.
  uint64_t h = 14695981039346656037ull;
  for (auto* p = mangled; *p != '\0'; ++p) {
    h ^= static_cast<unsigned char>(*p);
    h *= 1099511628211ull;
  }
  return h == 0 ? 1 : h;
}

std::vector<char>& bus_scratch() {
  thread_local std::vector<char> buf;
  return buf;
}

caf::error bus_type_error(std::string_view subject, uint64_t actual, uint64_t) {
  std::string text = "the message on '";
  text += subject;
  text += actual == 0 ? "' holds raw bytes, not the requested type"
                      : "' holds another type than the requested one";
  return caf::make_error(troupe::errc::type_mismatch, std::move(text));
}

namespace {

using bus_drain_atom = caf::atom_constant<caf::atom("busdrain")>;

// Messages a drainer runs per turn before it yields its scheduler thread.
constexpr size_t max_per_turn = 4096;

// A buffer keeps at most this much memory once it is drained again: enough
// for a full default buffer of 1 KiB messages (8192 of them). With 1 MiB, a
// subscriber behind its publisher freed and regrew an 8 MiB buffer per batch
// (glibc maps and unmaps it each time): 1 KiB messages under CPU contention
// ran at 0.08-0.13 M msgs/s, with 16 MiB at 1.03-1.17 M (bus_bench inproc,
// 500,000 messages, during a CI run).
constexpr size_t max_kept_bytes = size_t{16} << 20;

// Keeps data written by publishers, data written by the drainer, and data
// read by both on separate cache lines.
constexpr size_t cache_line = 64;

// The largest payload (the buffers store sizes in 32 bits).
constexpr size_t max_payload = UINT32_MAX;

// Snapshots cached per bus, and per thread.
constexpr size_t max_cached_subjects = 4096;
constexpr size_t thread_cache_slots = 64;

// A spin lock for a subscription's critical sections, which last tens of
// nanoseconds: taking it is one atomic exchange and releasing it a plain
// store, where a mutex costs two atomic operations, and a system call
// whenever publisher and drainer meet. A waiter spins briefly, then yields
// its thread, so a holder that lost its core gets it back. Waiting for room
// or for a callback happens on condition variables (`_any`), not here.
class spin_lock {
public:
  spin_lock() = default;
  spin_lock(const spin_lock&) = delete;
  spin_lock& operator=(const spin_lock&) = delete;

  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      for (int spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < 128)
          pause();
        else
          std::this_thread::yield();
      }
    }
  }

  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed)
           && !locked_.exchange(true, std::memory_order_acquire);
  }

  void unlock() noexcept {
    locked_.store(false, std::memory_order_release);
  }

private:
  static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  std::atomic<bool> locked_{false};
};

using sub_lock = std::unique_lock<spin_lock>;

// Messages stored back to back in one byte buffer, oldest first: a header
// with the sizes, then subject, reply subject and payload. Copying a message
// in and out is a few `memcpy`s into memory that is read and written in
// order, which is what lets one core hand millions of messages per second
// to another; the buffer is reused, so nothing is allocated once it has
// grown to the backlog. Not thread-safe.
class record_buffer {
public:
  record_buffer() = default;
  record_buffer(const record_buffer&) = delete;
  record_buffer& operator=(const record_buffer&) = delete;

  size_t count() const noexcept {
    return count_;
  }

  bool empty() const noexcept {
    return count_ == 0;
  }

  void push_back(const bus_message_view& m) {
    header h{static_cast<uint32_t>(m.subject.size()),
             static_cast<uint32_t>(m.reply_to.size()),
             static_cast<uint32_t>(m.payload.size()), m.type};
    auto n = sizeof(header) + m.subject.size() + m.reply_to.size()
             + m.payload.size();
    if (cap_ - end_ < n)
      grow(n);
    auto* p = data_.get() + end_;
    std::memcpy(p, &h, sizeof(header));
    p = put(p + sizeof(header), m.subject);
    p = put(p, m.reply_to);
    put(p, m.payload);
    end_ += n;
    ++count_;
  }

  /// Drops the oldest message. @pre `!empty()`
  void pop_front() noexcept {
    begin_ += record_size(begin_);
    if (--count_ == 0) {
      begin_ = 0;
      end_ = 0;
    }
  }

  /// Copies the message at offset `pos` into `out` (reusing its strings'
  /// buffers) and returns the offset of the next one.
  size_t read(size_t pos, bus_message& out) const {
    header h;
    std::memcpy(&h, data_.get() + pos, sizeof(header));
    auto* p = data_.get() + pos + sizeof(header);
    copy_to(out.subject, p, h.subject);
    p += h.subject;
    copy_to(out.reply_to, p, h.reply_to);
    p += h.reply_to;
    copy_to(out.payload, p, h.payload);
    out.type = h.type;
    return pos + sizeof(header) + h.subject + h.reply_to + h.payload;
  }

  /// Returns the offset of the oldest message.
  size_t begin() const noexcept {
    return begin_;
  }

  /// Forgets every message; keeps the memory unless it exceeds `keep`.
  void clear(size_t keep) noexcept {
    begin_ = 0;
    end_ = 0;
    count_ = 0;
    if (cap_ > keep) {
      data_.reset();
      cap_ = 0;
    }
  }

  void swap(record_buffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(cap_, other.cap_);
    std::swap(begin_, other.begin_);
    std::swap(end_, other.end_);
    std::swap(count_, other.count_);
  }

private:
  struct header {
    uint32_t subject;
    uint32_t reply_to;
    uint32_t payload;
    uint64_t type;
  };

  // Copies `x` to `p`; returns the end. (An empty view may have no data:
  // `memcpy` must not see that null pointer.)
  static char* put(char* p, std::string_view x) noexcept {
    if (!x.empty())
      std::memcpy(p, x.data(), x.size());
    return p + x.size();
  }

  // Like `out.assign(p, n)`, but cheap when the size stays the same (a
  // subject repeats, a reply subject stays empty).
  static void copy_to(std::string& out, const char* p, size_t n) {
    if (out.size() != n)
      out.resize(n);
    if (n > 0)
      std::memcpy(out.data(), p, n);
  }

  size_t record_size(size_t pos) const noexcept {
    header h;
    std::memcpy(&h, data_.get() + pos, sizeof(header));
    return sizeof(header) + h.subject + h.reply_to + h.payload;
  }

  // Makes room for `n` more bytes: moves the live records to the front, in
  // a larger block if need be.
  void grow(size_t n) {
    auto live = end_ - begin_;
    if (live + n <= cap_ && begin_ >= live) {
      std::memmove(data_.get(), data_.get() + begin_, live);
    } else {
      auto cap = std::max({size_t{4096}, 2 * cap_, live + n});
      std::unique_ptr<char[]> next{new char[cap]};
      if (live > 0)
        std::memcpy(next.get(), data_.get() + begin_, live);
      data_ = std::move(next);
      cap_ = cap;
    }
    begin_ = 0;
    end_ = live;
  }

  std::unique_ptr<char[]> data_;
  size_t cap_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
  size_t count_ = 0;
};

} // namespace

/// The subscription whose callback runs on this thread, if any.
thread_local bus_sub* current_sub = nullptr;

enum class push_result { queued, dropped, closed };

/// One subscription: its buffer, its callback and the actor that runs it.
///
/// A publisher appends a message to `pending_` under the lock; the drainer
/// swaps all of `pending_` with its own, empty `batch_` at once (O(1) under
/// the lock), then runs the callback on each message of the batch without
/// the lock. So the two meet at the lock once per batch, not per message.
///
/// Invariants, under `mtx_` unless marked: (1) `pending_.count() <=
/// capacity_`; (2) `scheduled_` is true from the push that found the
/// subscription idle until a drain finds nothing left, and meanwhile exactly
/// one drain message is in flight or running, so a push sends one only when
/// `scheduled_` was false; (3) `running_` is true only while the drainer
/// runs callbacks, outside the lock; (4) once `closed_` is true, nothing is
/// pending and the callback runs no more (the drainer checks `closing_`
/// before each call); (5) `batch_`, `batch_pos_`, `batch_left_` and `msg_`
/// belong to the drainer (no lock).
class bus_sub {
public:
  /// An inline sink: runs on the publisher's thread, no buffer (used for
  /// the reply subjects of requests).
  using sink_fn = std::function<void(const bus_message_view&)>;

  bus_sub(uint64_t sub_id, std::string pat, subscription_options opts,
          bus_callback f, sink_fn sink, spdlog::logger* log)
      : id(sub_id), pattern(std::move(pat)), group(std::move(opts.queue_group)),
        capacity_(opts.capacity), policy_(opts.policy),
        max_wait_(opts.max_wait), sink_(std::move(sink)), log_(log),
        callback_(std::move(f)) {
    // nop
  }

  bus_sub(const bus_sub&) = delete;
  bus_sub& operator=(const bus_sub&) = delete;

  const uint64_t id;
  const std::string pattern;
  const std::string group;

  /// Sets the actor that drains the buffer; before anyone can publish here.
  void start(caf::actor drainer) {
    std::lock_guard<spin_lock> guard{mtx_};
    drainer_ = std::move(drainer);
  }

  /// Returns whether the subscription is open and likely has room.
  bool has_room() const noexcept {
    return !closing_.load(std::memory_order_relaxed)
           && pending_hint_.load(std::memory_order_relaxed) < capacity_;
  }

  push_result push(const bus_message_view& m) {
    if (sink_) {
      if (closing_.load(std::memory_order_acquire))
        return push_result::closed;
      sink_(m);
      return push_result::queued;
    }
    caf::actor wake;
    {
      sub_lock guard{mtx_};
      if (closed_)
        return push_result::closed;
      if (dead_) {
        ++dropped_;
        return push_result::dropped;
      }
      if (pending_.count() >= capacity_) {
        switch (policy_) {
          case bus_overflow::drop_newest:
            ++dropped_;
            return push_result::dropped;
          case bus_overflow::drop_oldest:
            pending_.pop_front();
            ++dropped_;
            break;
          case bus_overflow::block: {
            // The callback of this subscription would wait for itself.
            if (current_sub == this) {
              ++dropped_;
              return push_result::dropped;
            }
            ++blocked_;
            ++waiters_;
            auto room = not_full_.wait_for(guard, max_wait_, [this] {
              return closed_ || dead_ || pending_.count() < capacity_;
            });
            --waiters_;
            if (closed_)
              return push_result::closed;
            if (!room || dead_) {
              ++dropped_;
              return push_result::dropped;
            }
            break;
          }
        }
      }
      pending_.push_back(m);
      pending_hint_.store(pending_.count(), std::memory_order_relaxed);
      if (!scheduled_) {
        scheduled_ = true;
        wake = drainer_;
      }
    }
    if (wake)
      caf::anon_send(wake, bus_drain_atom::value);
    return push_result::queued;
  }

  /// Runs the callback on what is buffered. Returns true if it stopped after
  /// `max_per_turn` messages with more left: the caller must send another
  /// drain message.
  bool drain() {
    size_t budget = max_per_turn;
    sub_lock guard{mtx_};
    for (;;) {
      if (closed_) {
        dropped_ += batch_left_;
        batch_left_ = 0;
        scheduled_ = false;
        // If the callback closed its own subscription, it is destroyed here,
        // after it returned.
        auto f = std::move(callback_);
        guard.unlock();
        batch_.clear(0);
        return false;
      }
      if (batch_left_ == 0 && pending_.empty()) {
        scheduled_ = false;
        return false;
      }
      if (budget == 0)
        return true; // still scheduled
      auto wake_publishers = false;
      if (batch_left_ == 0) {
        // `batch_` is empty: the publishers get its memory back.
        pending_.swap(batch_);
        batch_pos_ = batch_.begin();
        batch_left_ = batch_.count();
        pending_hint_.store(0, std::memory_order_relaxed);
        wake_publishers = waiters_ > 0;
      }
      running_ = true;
      guard.unlock();
      if (wake_publishers)
        not_full_.notify_all();
      auto* prev = current_sub;
      current_sub = this;
      for (; batch_left_ > 0 && budget > 0; --batch_left_, --budget) {
        if (closing_.load(std::memory_order_acquire))
          break;
        batch_pos_ = batch_.read(batch_pos_, msg_);
        try {
          callback_(msg_);
        } catch (const std::exception& e) {
          bump(failed_);
          log_->warn("bus: the callback of subscription '{}' threw: {}",
                     pattern, e.what());
        } catch (...) {
          bump(failed_);
          log_->warn("bus: the callback of subscription '{}' threw", pattern);
        }
        bump(delivered_);
      }
      current_sub = prev;
      if (batch_left_ == 0) {
        // Done with this batch: keep its memory for the next one, unless a
        // burst made it large.
        batch_.clear(max_kept_bytes);
        if (msg_.payload.capacity() > max_kept_bytes)
          std::string{}.swap(msg_.payload);
      }
      guard.lock();
      running_ = false;
      if (closed_)
        idle_.notify_all();
    }
  }

  /// Ends the subscription: drops what is buffered, wakes blocked
  /// publishers, waits for a running callback (unless called from it),
  /// destroys the callback and stops the drainer. Idempotent.
  void close() {
    caf::actor drainer;
    bus_callback f;
    {
      sub_lock guard{mtx_};
      if (closed_)
        return;
      closed_ = true;
      closing_.store(true, std::memory_order_release);
      dropped_ += pending_.count();
      pending_.clear(0);
      pending_hint_.store(0, std::memory_order_relaxed);
      not_full_.notify_all();
      if (current_sub != this) {
        idle_.wait(guard, [this] { return !running_; });
        f = std::move(callback_);
      }
      drainer = std::move(drainer_);
    }
    if (drainer)
      caf::anon_send_exit(drainer, caf::exit_reason::user_shutdown);
  }

  /// The drainer is gone (e.g. `node::stop`): drop what would wait for it.
  void drainer_down() {
    std::lock_guard<spin_lock> guard{mtx_};
    dead_ = true;
    dropped_ += pending_.count();
    pending_.clear(0);
    pending_hint_.store(0, std::memory_order_relaxed);
    not_full_.notify_all();
  }

  bool closed() const noexcept {
    return closing_.load(std::memory_order_acquire);
  }

  bool is_sink() const noexcept {
    return static_cast<bool>(sink_);
  }

  subscription_stats stats() {
    std::lock_guard<spin_lock> guard{mtx_};
    subscription_stats x;
    x.delivered = delivered_.load(std::memory_order_relaxed);
    x.dropped = dropped_;
    x.blocked = blocked_;
    x.failed = failed_.load(std::memory_order_relaxed);
    x.pending = pending_.count();
    return x;
  }

private:
  // Counts on a counter that only the drainer writes: no atomic increment.
  static void bump(std::atomic<uint64_t>& x) noexcept {
    x.store(x.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  // -- read by all, written rarely --

  const size_t capacity_;
  const bus_overflow policy_;
  const caf::timespan max_wait_;
  const sink_fn sink_;
  spdlog::logger* const log_;
  std::atomic<bool> closing_{false};

  // -- written by publishers --

  alignas(cache_line) std::atomic<size_t> pending_hint_{0};
  spin_lock mtx_;
  std::condition_variable_any not_full_;
  std::condition_variable_any idle_;
  record_buffer pending_;
  bus_callback callback_;
  caf::actor drainer_;
  bool scheduled_ = false;
  bool running_ = false;
  bool closed_ = false;
  bool dead_ = false;
  size_t waiters_ = 0;
  uint64_t dropped_ = 0;
  uint64_t blocked_ = 0;

  // -- written by the drainer --

  alignas(cache_line) std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> failed_{0};
  record_buffer batch_;
  size_t batch_pos_ = 0;
  size_t batch_left_ = 0;
  bus_message msg_;
};

namespace {

// Runs a subscription's callback. Messaging interface:
// - `(bus_drain_atom)`: drains the buffer; no reply.
caf::behavior drainer(caf::event_based_actor* self,
                      std::shared_ptr<bus_sub> sub) {
  return {
    [self, sub](bus_drain_atom) {
      if (sub->drain())
        self->send(self, bus_drain_atom::value);
    },
  };
}

// The subscriptions that a subject reaches, immutable once built.
struct bus_snapshot {
  struct group {
    std::string name;
    std::vector<std::shared_ptr<bus_sub>> members;
    mutable std::atomic<size_t> next{0};
  };
  std::string subject;
  std::vector<std::shared_ptr<bus_sub>> plain;
  std::vector<std::unique_ptr<group>> groups;
  std::shared_ptr<bus_router> router;

  const group* find_group(std::string_view name) const noexcept {
    for (auto& g : groups)
      if (g->name == name)
        return g.get();
    return nullptr;
  }
};

// Gives `m` to one live member of `g`, preferring one with room, starting
// round-robin. Returns whether a member took it (or dropped it by policy).
bool deliver_group(const bus_snapshot::group& g, const bus_message_view& m) {
  auto n = g.members.size();
  auto start = g.next.fetch_add(1, std::memory_order_relaxed);
  for (size_t k = 0; k < n; ++k) {
    auto& s = g.members[(start + k) % n];
    if (s->has_room() && s->push(m) != push_result::closed)
      return true;
  }
  for (size_t k = 0; k < n; ++k)
    if (g.members[(start + k) % n]->push(m) != push_result::closed)
      return true;
  return false;
}

// A slot of a thread's snapshot cache: valid while `bus` and `gen` match.
struct cache_slot {
  uint64_t bus = 0;
  uint64_t gen = 0;
  std::shared_ptr<const bus_snapshot> snap;
};

thread_local std::array<cache_slot, thread_cache_slots> thread_cache;
thread_local cache_slot* last_slot = nullptr;

std::atomic<uint64_t> next_bus_id{1};

// A request waiting for its reply; guarded by `bus_core::req_mtx_`.
struct pending_request {
  std::condition_variable cv;
  std::optional<bus_message> reply;
  bool failed = false;
};

} // namespace

/// The state of a bus, shared with its subscription handles.
///
/// Invariants, under `mtx_`: (1) `subs_` and `index_` hold the same
/// subscriptions; (2) `cache_` holds only snapshots of the current
/// subscriptions (it is cleared on every change); (3) `gen_` changes with
/// every change of subscriptions or router, so a thread's cached snapshot
/// with an older generation is never used.
class bus_core {
public:
  explicit bus_core(node& host)
      : host_(host), log_(&host.log()), id_(next_bus_id.fetch_add(1)) {
    std::random_device rd;
    uint64_t r = (uint64_t{rd()} << 32) ^ rd() ^ id_;
    char hex[17];
    for (int i = 15; i >= 0; --i) {
      hex[i] = "0123456789abcdef"[r & 0xf];
      r >>= 4;
    }
    hex[16] = '\0';
    inbox_prefix_ = std::string{"_INBOX."} + hex + ".";
    // Replies to this bus's requests: fulfilled on the replier's thread.
    static_cast<void>(
      subscribe_impl(inbox_prefix_ + "*", subscription_options{}, nullptr,
                     [this](const bus_message_view& m) { on_reply(m); }));
  }

  bus_core(const bus_core&) = delete;
  bus_core& operator=(const bus_core&) = delete;

  // -- subscriptions ----------------------------------------------------------

  caf::expected<std::shared_ptr<bus_sub>> subscribe(std::string_view pattern,
                                                    subscription_options opts,
                                                    bus_callback f) {
    if (auto err = validate_pattern(pattern))
      return err;
    if (opts.capacity == 0)
      return caf::make_error(caf::sec::invalid_argument,
                             "a subscription needs a capacity of at least 1");
    if (!opts.queue_group.empty()) {
      auto& g = opts.queue_group;
      if (std::any_of(g.begin(), g.end(), [](char c) {
            auto u = static_cast<unsigned char>(c);
            return u <= 0x20 || u == 0x7f;
          }))
        return caf::make_error(errc::invalid_subject,
                               "invalid queue group '" + g
                                 + "': whitespace or control character");
    }
    if (!f)
      return caf::make_error(caf::sec::invalid_argument,
                             "a subscription needs a callback");
    return subscribe_impl(std::string{pattern}, std::move(opts), std::move(f),
                          nullptr);
  }

  caf::expected<std::shared_ptr<bus_sub>>
  subscribe_impl(std::string pattern, subscription_options opts, bus_callback f,
                 bus_sub::sink_fn sink) {
    auto blocking = opts.blocking;
    auto sub = std::make_shared<bus_sub>(next_sub_id_.fetch_add(1),
                                         std::move(pattern), std::move(opts),
                                         std::move(f), std::move(sink), log_);
    return add(std::move(sub), blocking);
  }

  void remove(const std::shared_ptr<bus_sub>& sub) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (!closed_ && subs_.erase(sub->id) > 0) {
        index_.erase(sub->pattern, sub->id);
        changed();
        auto i = interest_.find({sub->pattern, sub->group});
        if (i != interest_.end() && --i->second == 0) {
          interest_.erase(i);
          if (router_)
            router_->interest_changed(false, {sub->pattern, sub->group});
        }
      }
    }
    sub->close();
  }

  // -- publishing -------------------------------------------------------------

  caf::error publish(const bus_message_view& m, size_t* receivers = nullptr) {
    if (m.payload.size() > max_payload)
      return payload_too_large(m);
    caf::error err;
    auto* entry = find(m.subject, err);
    if (entry == nullptr)
      return err;
    // A router may publish to another bus on this thread, which may reuse
    // this thread's cache slot: then keep the snapshot alive ourselves.
    std::shared_ptr<const bus_snapshot> keep;
    if ((*entry)->router)
      keep = *entry;
    auto& snap = **entry;
    size_t n = 0;
    for (auto& s : snap.plain)
      if (s->push(m) != push_result::closed)
        ++n;
    if (!snap.router) {
      for (auto& g : snap.groups)
        if (deliver_group(*g, m))
          ++n;
    } else {
      std::vector<std::string_view> served;
      for (auto& g : snap.groups)
        if (deliver_group(*g, m)) {
          ++n;
          served.push_back(g->name);
        }
      n += snap.router->route(m, served);
    }
    if (receivers != nullptr)
      *receivers = n;
    return caf::none;
  }

  caf::error inject(const bus_message_view& m, const inject_options& opts) {
    if (m.payload.size() > max_payload)
      return payload_too_large(m);
    if (!m.reply_to.empty())
      if (auto e = validate_subject(m.reply_to))
        return e;
    caf::error err;
    auto* entry = find(m.subject, err);
    if (entry == nullptr)
      return err;
    auto keep = *entry;
    if (opts.plain)
      for (auto& s : keep->plain)
        s->push(m);
    for (auto& name : opts.queue_groups)
      if (auto* g = keep->find_group(name))
        deliver_group(*g, m);
    return caf::none;
  }

  // -- request/reply ----------------------------------------------------------

  caf::expected<bus_message> request(bus_message_view m,
                                     caf::timespan timeout) {
    auto p = std::make_shared<pending_request>();
    uint64_t rid = 0;
    {
      std::lock_guard<std::mutex> guard{req_mtx_};
      if (requests_closed_)
        return caf::make_error(troupe::errc::closed, "the bus has ended");
      rid = ++next_request_;
      requests_.emplace(rid, p);
    }
    auto reply_to = inbox_prefix_ + std::to_string(rid);
    m.reply_to = reply_to;
    size_t receivers = 0;
    auto err = publish(m, &receivers);
    std::unique_lock<std::mutex> guard{req_mtx_};
    if (err || receivers == 0) {
      requests_.erase(rid);
      if (err)
        return err;
      return caf::make_error(errc::no_responders,
                             "no subscriber for a request on '"
                               + std::string{m.subject} + "'");
    }
    p->cv.wait_for(guard, timeout,
                   [&p] { return p->reply.has_value() || p->failed; });
    requests_.erase(rid);
    if (p->reply)
      return std::move(*p->reply);
    if (p->failed)
      return caf::make_error(troupe::errc::closed,
                             "the bus ended before the reply");
    return caf::make_error(troupe::errc::timeout,
                           "no reply to a request on '" + std::string{m.subject}
                             + "' within " + caf::deep_to_string(timeout));
  }

  // -- the router hook --------------------------------------------------------

  std::vector<bus_interest> attach(std::shared_ptr<bus_router> r) {
    std::lock_guard<std::mutex> guard{mtx_};
    router_ = std::move(r);
    changed();
    std::vector<bus_interest> result;
    if (router_)
      for (auto& [key, count] : interest_)
        result.push_back({key.first, key.second});
    return result;
  }

  // -- shutdown ---------------------------------------------------------------

  void shutdown() {
    std::unordered_map<uint64_t, std::shared_ptr<bus_sub>> subs;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (closed_)
        return;
      closed_ = true;
      subs.swap(subs_);
      index_ = subject_index{};
      interest_.clear();
      router_.reset();
      changed();
    }
    for (auto& [id, sub] : subs)
      sub->close();
    std::lock_guard<std::mutex> guard{req_mtx_};
    requests_closed_ = true;
    for (auto& [id, p] : requests_) {
      p->failed = true;
      p->cv.notify_all();
    }
  }

private:
  caf::expected<std::shared_ptr<bus_sub>> add(std::shared_ptr<bus_sub> sub,
                                              bool blocking) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (closed_)
      return caf::make_error(troupe::errc::closed, "the bus has ended");
    if (!sub->is_sink()) {
      caf::actor hdl;
      if (blocking)
        hdl = host_.system().spawn<caf::detached>(drainer, sub);
      else
        hdl = host_.system().spawn(drainer, sub);
      // Runs at once if the actor is already gone.
      std::weak_ptr<bus_sub> weak = sub;
      caf::actor_cast<caf::abstract_actor*>(hdl)->attach_functor([weak] {
        if (auto s = weak.lock())
          s->drainer_down();
      });
      host_.track(caf::actor_cast<caf::actor_addr>(hdl));
      sub->start(std::move(hdl));
    }
    index_.insert(sub->pattern, sub->id);
    subs_.emplace(sub->id, sub);
    changed();
    if (++interest_[{sub->pattern, sub->group}] == 1 && router_)
      router_->interest_changed(true, {sub->pattern, sub->group});
    return sub;
  }

  static caf::error payload_too_large(const bus_message_view& m) {
    return caf::make_error(caf::sec::invalid_argument,
                           "the payload of a message on '"
                             + std::string{m.subject} + "' exceeds 4 GiB: "
                             + std::to_string(m.payload.size()) + " bytes");
  }

  // Subscriptions or router changed; under `mtx_`.
  void changed() {
    cache_.clear();
    gen_.fetch_add(1, std::memory_order_release);
  }

  // Returns this thread's cache entry for `subject`, filled if needed, or
  // null with `err` set.
  const std::shared_ptr<const bus_snapshot>* find(std::string_view subject,
                                                  caf::error& err) {
    auto gen = gen_.load(std::memory_order_acquire);
    // Publishers often repeat a subject: try the last slot before hashing.
    if (auto* last = last_slot; last != nullptr && last->bus == id_
                                && last->gen == gen
                                && last->snap->subject == subject)
      return &last->snap;
    auto& slot = thread_cache[std::hash<std::string_view>{}(subject)
                              % thread_cache_slots];
    last_slot = &slot;
    if (slot.bus == id_ && slot.gen == gen && slot.snap->subject == subject)
      return &slot.snap;
    if (auto e = validate_subject(subject)) {
      err = std::move(e);
      return nullptr;
    }
    std::lock_guard<std::mutex> guard{mtx_};
    if (closed_) {
      err = caf::make_error(troupe::errc::closed, "the bus has ended");
      return nullptr;
    }
    std::shared_ptr<const bus_snapshot> snap;
    if (auto i = cache_.find(subject); i != cache_.end()) {
      snap = i->second;
    } else {
      snap = build(subject);
      if (cache_.size() >= max_cached_subjects)
        cache_.clear();
      cache_.emplace(snap->subject, snap);
    }
    slot.bus = id_;
    slot.gen = gen_.load(std::memory_order_relaxed);
    slot.snap = std::move(snap);
    return &slot.snap;
  }

  // Under `mtx_`.
  std::shared_ptr<const bus_snapshot> build(std::string_view subject) {
    auto snap = std::make_shared<bus_snapshot>();
    snap->subject = std::string{subject};
    snap->router = router_;
    ids_.clear();
    index_.match(subject, ids_);
    // Stable order (by subscription), so round-robin is fair.
    std::sort(ids_.begin(), ids_.end());
    for (auto id : ids_) {
      auto& sub = subs_.at(id);
      if (sub->group.empty()) {
        snap->plain.push_back(sub);
        continue;
      }
      bus_snapshot::group* g = nullptr;
      for (auto& x : snap->groups)
        if (x->name == sub->group)
          g = x.get();
      if (g == nullptr) {
        snap->groups.push_back(std::make_unique<bus_snapshot::group>());
        g = snap->groups.back().get();
        g->name = sub->group;
      }
      g->members.push_back(sub);
    }
    return snap;
  }

  // A reply to one of this bus's requests, on the replier's thread.
  void on_reply(const bus_message_view& m) {
    auto tail = m.subject.substr(inbox_prefix_.size());
    uint64_t rid = 0;
    auto [end, ec]
      = std::from_chars(tail.data(), tail.data() + tail.size(), rid);
    if (ec != std::errc{} || end != tail.data() + tail.size())
      return;
    std::lock_guard<std::mutex> guard{req_mtx_};
    auto i = requests_.find(rid);
    if (i == requests_.end() || i->second->reply)
      return; // timed out, or a later reply: the first one wins
    auto& p = *i->second;
    p.reply.emplace();
    p.reply->subject.assign(m.subject);
    p.reply->reply_to.assign(m.reply_to);
    p.reply->payload.assign(m.payload);
    p.reply->type = m.type;
    p.cv.notify_all();
  }

  node& host_;
  spdlog::logger* log_;
  const uint64_t id_;
  std::string inbox_prefix_;
  std::atomic<uint64_t> gen_{1};
  std::atomic<uint64_t> next_sub_id_{1};

  std::mutex mtx_;
  bool closed_ = false;
  subject_index index_;
  std::unordered_map<uint64_t, std::shared_ptr<bus_sub>> subs_;
  std::unordered_map<std::string_view, std::shared_ptr<const bus_snapshot>>
    cache_;
  std::map<std::pair<std::string, std::string>, size_t> interest_;
  std::shared_ptr<bus_router> router_;
  std::vector<uint64_t> ids_; // scratch for `build`

  std::mutex req_mtx_;
  bool requests_closed_ = false;
  uint64_t next_request_ = 0;
  std::unordered_map<uint64_t, std::shared_ptr<pending_request>> requests_;
};

} // namespace detail

std::string to_string(bus_overflow x) {
  switch (x) {
    case bus_overflow::block:
      return "block";
    case bus_overflow::drop_oldest:
      return "drop_oldest";
    case bus_overflow::drop_newest:
      return "drop_newest";
  }
  return "bus_overflow(" + std::to_string(static_cast<int>(x)) + ")";
}

bus_router::~bus_router() = default;

// -- bus_subscription ---------------------------------------------------------

bus_subscription::bus_subscription() noexcept = default;

bus_subscription::bus_subscription(
  std::shared_ptr<detail::bus_core> core,
  std::shared_ptr<detail::bus_sub> sub) noexcept
    : core_(std::move(core)), sub_(std::move(sub)) {
  // nop
}

bus_subscription::~bus_subscription() {
  unsubscribe();
}

bus_subscription::bus_subscription(bus_subscription&&) noexcept = default;

bus_subscription& bus_subscription::operator=(bus_subscription&& x) noexcept {
  if (this != &x) {
    unsubscribe();
    core_ = std::move(x.core_);
    sub_ = std::move(x.sub_);
  }
  return *this;
}

void bus_subscription::unsubscribe() {
  // Keeps `sub_`: its counters stay readable.
  if (core_)
    core_->remove(sub_);
  core_.reset();
}

bool bus_subscription::active() const noexcept {
  return sub_ && !sub_->closed();
}

subscription_stats bus_subscription::stats() const {
  return sub_ ? sub_->stats() : subscription_stats{};
}

const std::string& bus_subscription::pattern() const noexcept {
  static const std::string none;
  return sub_ ? sub_->pattern : none;
}

// -- bus ----------------------------------------------------------------------

bus::bus(node& host) : core_(std::make_shared<detail::bus_core>(host)) {
  // nop
}

bus::~bus() {
  core_->shutdown();
}

caf::error bus::publish(std::string_view subject, std::string_view payload) {
  return core_->publish(bus_message_view{subject, {}, payload, 0});
}

caf::error bus::publish(const bus_message_view& msg) {
  if (!msg.reply_to.empty())
    if (auto err = validate_subject(msg.reply_to))
      return err;
  return core_->publish(msg);
}

caf::error bus::reply(const bus_message& request, std::string_view payload) {
  return reply(request, bus_message_view{{}, {}, payload, 0});
}

caf::error bus::reply(const bus_message& request, bus_message_view msg) {
  if (request.reply_to.empty())
    return caf::make_error(errc::invalid_subject,
                           "the message on '" + request.subject
                             + "' expects no reply (no reply subject)");
  msg.subject = request.reply_to;
  return core_->publish(msg);
}

caf::expected<bus_subscription> bus::subscribe(std::string_view pattern,
                                               subscription_options opts,
                                               bus_callback f) {
  auto sub = core_->subscribe(pattern, std::move(opts), std::move(f));
  if (!sub)
    return std::move(sub.error());
  return bus_subscription{core_, std::move(*sub)};
}

caf::expected<bus_message> bus::request(std::string_view subject,
                                        std::string_view payload,
                                        caf::timespan timeout) {
  return request(bus_message_view{subject, {}, payload, 0}, timeout);
}

caf::expected<bus_message> bus::request(bus_message_view msg,
                                        caf::timespan timeout) {
  // The bus may end while this thread waits: keep its state alive.
  auto core = core_;
  return core->request(msg, timeout);
}

std::vector<bus_interest> bus::attach_router(std::shared_ptr<bus_router> r) {
  return core_->attach(std::move(r));
}

void bus::detach_router() {
  core_->attach(nullptr);
}

caf::error bus::inject(const bus_message_view& msg,
                       const inject_options& opts) {
  return core_->inject(msg, opts);
}

} // namespace troupe::bus
