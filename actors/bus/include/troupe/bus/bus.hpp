#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include "troupe/bus/message.hpp"
#include "troupe/bus/router.hpp"
#include "troupe/bus/subject.hpp"
#include "troupe/runtime/fwd.hpp"

namespace troupe::bus {

namespace detail {

class bus_core;
class bus_sub;

} // namespace detail

// -- subscriptions ------------------------------------------------------------

/// What a subscription does when its buffer is full.
enum class bus_overflow : uint8_t {
  /// The publisher waits until there is room (backpressure), at most
  /// `subscription_options::max_wait`; then the message is dropped.
  block,
  /// The oldest waiting message makes room for the new one.
  drop_oldest,
  /// The new message is dropped.
  drop_newest,
};

/// Returns the name of `x`, e.g. `"drop_oldest"`.
std::string to_string(bus_overflow x);

/// How a subscription takes its messages.
struct subscription_options {
  /// Subscriptions with the same non-empty group split the messages they
  /// match: each message goes to exactly one live member (round-robin,
  /// preferring a member whose buffer has room). Empty: every message.
  std::string queue_group;
  /// At most this many messages wait for the callback, besides the batch
  /// the callback is working through (the drainer takes everything waiting
  /// at once, so up to twice this many are held).
  size_t capacity = 8192;
  /// What happens to a message that finds the buffer full.
  bus_overflow policy = bus_overflow::block;
  /// With `bus_overflow::block`: how long a publisher waits for room.
  caf::timespan max_wait = std::chrono::seconds(5);
  /// Whether the callback blocks (sleeps, file or socket I/O): then it runs
  /// on a thread of its own instead of on CAF's scheduler.
  bool blocking = false;
};

/// What a subscription has done so far (`bus_subscription::stats`).
struct subscription_stats {
  /// Messages handed to the callback (including those it threw on).
  uint64_t delivered = 0;
  /// Messages dropped by the overflow policy, after `max_wait`, or still
  /// waiting when the subscription ended.
  uint64_t dropped = 0;
  /// Publications that found the buffer full and waited (`block`).
  uint64_t blocked = 0;
  /// Callbacks that threw (the subscription carries on).
  uint64_t failed = 0;
  /// Messages waiting for the callback now.
  size_t pending = 0;
};

/// The callback of a subscription. It runs on CAF's scheduler (or its own
/// thread, if `blocking`), never concurrently with itself; it may publish,
/// reply and unsubscribe, but it must not block for long.
using bus_callback = std::function<void(const bus_message&)>;

/// A subscription to a bus: a move-only handle that unsubscribes when it is
/// destroyed (or on `unsubscribe()`). Once `unsubscribe` returns, the
/// callback is not running and will not run again (unless it is the callback
/// itself that unsubscribes: then it finishes its current call), and it is
/// destroyed. Messages still waiting are dropped. The counters stay
/// readable after `unsubscribe`, until the handle is destroyed or assigned.
///
/// Thread-safety: `stats` may be called from any thread; `unsubscribe`, the
/// destructor and assignment need external synchronisation.
class bus_subscription {
public:
  /// An empty handle, subscribed to nothing.
  bus_subscription() noexcept;

  ~bus_subscription();

  bus_subscription(bus_subscription&&) noexcept;
  bus_subscription& operator=(bus_subscription&&) noexcept;

  bus_subscription(const bus_subscription&) = delete;
  bus_subscription& operator=(const bus_subscription&) = delete;

  /// Ends the subscription; idempotent.
  void unsubscribe();

  /// Returns whether the handle holds a subscription not yet ended.
  bool active() const noexcept;

  explicit operator bool() const noexcept {
    return active();
  }

  /// Returns the subscription's counters (zero for an empty handle; final
  /// after `unsubscribe`).
  subscription_stats stats() const;

  /// Returns the pattern it subscribed to (empty for an empty handle).
  const std::string& pattern() const noexcept;

private:
  friend class bus;

  bus_subscription(std::shared_ptr<detail::bus_core> core,
                   std::shared_ptr<detail::bus_sub> sub) noexcept;

  std::shared_ptr<detail::bus_core> core_;
  std::shared_ptr<detail::bus_sub> sub_;
};

// -- the bus ------------------------------------------------------------------

/// A publish/subscribe message bus on subjects (see `subject.hpp`) with
/// NATS's semantics, for applications that embed troupe and need no actor
/// code of their own: `publish`, `subscribe` with wildcards and queue groups,
/// `request` with a timeout and `errc::no_responders`.
///
/// ```cpp
/// troupe::bus::bus b{node};
/// auto sub = b.subscribe("orders.>", [](const bus_message& m) {
///   std::cout << m.subject << ": " << m.payload << '\n';
/// });
/// b.publish("orders.eu.created", "order 42");      // raw bytes or text
/// b.publish("orders.eu.price", price{42, 9.5});    // any inspectable type
/// auto quote = b.subscribe("quote", [&b](const bus_message& m) {
///   b.reply(m, "17");
/// });
/// auto r = b.request("quote", "ACME", std::chrono::seconds(1));
/// ```
///
/// Delivery: each subscription has a bounded buffer and an actor that runs
/// its callback on batches of buffered messages; a CAF message wakes that
/// actor only when the buffer turns non-empty, so a busy subscription costs
/// a mutex lock and a few copies per message, no allocation once warm.
/// Messages from one publishing thread to one subscription arrive in the
/// order they were published (per publisher-subscriber FIFO); there is no
/// order across publishers. A message reaches each matching plain
/// subscription once, and one member of each matching queue group.
///
/// Thread-safety: every member function may be called from any thread,
/// including from callbacks and actors, concurrently. Publishing blocks only
/// on a full `bus_overflow::block` subscription, and never on one's own
/// subscription from its own callback (that message is dropped instead).
/// `request` blocks the calling thread until the reply or the timeout, so
/// actors should prefer publishing with a `reply_to` subject they subscribe
/// to. Destroy the bus and its subscriptions before the node: the
/// destructor ends every subscription (waiting for running callbacks) and
/// fails waiting requests with `troupe::errc::closed`.
class bus {
public:
  /// Creates a bus whose callbacks run on `host`'s actor system; their
  /// actors are top-level actors of `host`, so `node::stop` ends them (the
  /// bus then drops what it would deliver to them).
  explicit bus(node& host);

  ~bus();

  bus(const bus&) = delete;
  bus& operator=(const bus&) = delete;

  // -- publishing -------------------------------------------------------------

  /// Publishes raw bytes or text. Returns `errc::invalid_subject` if the
  /// subject is malformed, `troupe::errc::closed` after the bus ended,
  /// `caf::sec::invalid_argument` for a payload over 4 GiB; dropping by a
  /// full subscription is not an error (see its `stats`).
  [[nodiscard]] caf::error publish(std::string_view subject,
                                   std::string_view payload);

  /// Publishes a value of any type CAF can serialize; read it with
  /// `bus_message::get<T>()`.
  template <class T, class = std::enable_if_t<
                       !std::is_convertible_v<const T&, std::string_view>>>
  [[nodiscard]] caf::error publish(std::string_view subject, const T& x) {
    return publish(bus_message_view{
      subject, {}, troupe::encode_scratch(x), troupe::type_tag<T>()});
  }

  /// Publishes `msg` as it is, e.g. with a `reply_to` subject of one's own.
  [[nodiscard]] caf::error publish(const bus_message_view& msg);

  /// Publishes `payload` to the reply subject of `request`. Returns
  /// `errc::invalid_subject` if `request` expects no reply.
  [[nodiscard]] caf::error reply(const bus_message& request,
                                 std::string_view payload);

  template <class T, class = std::enable_if_t<
                       !std::is_convertible_v<const T&, std::string_view>>>
  [[nodiscard]] caf::error reply(const bus_message& request, const T& x) {
    return reply(request,
                 bus_message_view{
                   {}, {}, troupe::encode_scratch(x), troupe::type_tag<T>()});
  }

  // -- subscribing ------------------------------------------------------------

  /// Subscribes `f` to the subjects that match `pattern`. Returns
  /// `errc::invalid_subject` for a malformed pattern, `troupe::errc::closed`
  /// after the bus ended, `caf::sec::invalid_argument` for a zero capacity.
  [[nodiscard]] caf::expected<bus_subscription>
  subscribe(std::string_view pattern, subscription_options opts,
            bus_callback f);

  /// Subscribes with the default options.
  [[nodiscard]] caf::expected<bus_subscription>
  subscribe(std::string_view pattern, bus_callback f) {
    return subscribe(pattern, subscription_options{}, std::move(f));
  }

  // -- request/reply ----------------------------------------------------------

  /// Publishes `payload` with a fresh reply subject and waits up to
  /// `timeout` for the first reply. Returns the reply; `errc::no_responders`
  /// at once if no subscription (local, or remote via a router) matches;
  /// `troupe::errc::timeout` if no reply came in time; `errc::invalid_subject`,
  /// `troupe::errc::closed` as `publish` does.
  [[nodiscard]] caf::expected<bus_message> request(std::string_view subject,
                                                   std::string_view payload,
                                                   caf::timespan timeout);

  template <class T, class = std::enable_if_t<
                       !std::is_convertible_v<const T&, std::string_view>>>
  [[nodiscard]] caf::expected<bus_message>
  request(std::string_view subject, const T& x, caf::timespan timeout) {
    return request(
      bus_message_view{
        subject, {}, troupe::encode_scratch(x), troupe::type_tag<T>()},
      timeout);
  }

  // -- the router hook --------------------------------------------------------

  /// Installs `r` (replacing any other) and returns the local interest at
  /// this moment; `r` then hears of every change after it.
  std::vector<bus_interest> attach_router(std::shared_ptr<bus_router> r);

  /// Removes the router; publishers that already looked it up may still
  /// call it once.
  void detach_router();

  /// Delivers `msg`, which arrived from another node, to local subscribers
  /// as `opts` says, without handing it to the router.
  [[nodiscard]] caf::error inject(const bus_message_view& msg,
                                  const inject_options& opts);

private:
  [[nodiscard]] caf::error reply(const bus_message& request,
                                 bus_message_view msg);

  [[nodiscard]] caf::expected<bus_message> request(bus_message_view msg,
                                                   caf::timespan timeout);

  std::shared_ptr<detail::bus_core> core_;
};

} // namespace troupe::bus
