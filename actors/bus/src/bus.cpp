// The public members of `bus` and `bus_subscription`, which forward to the
// bus's state (`bus_core`, core.hpp), and the bus's payload type error
// declared in message.hpp (a payload's type identity and encoding are the
// runtime's: troupe/runtime/payload.hpp). The parts of the bus, and where
// they are:
//
// - core.hpp: the bus's state; subscribing, publishing, request/reply.
// - subscription.hpp: a subscription, its buffer and its drainer actor; it
//   also draws how a message travels from `publish` to a callback.
// - snapshot_cache.hpp: which subscriptions a subject reaches, cached per
//   bus and per thread.
// - record_buffer.hpp, spin_lock.hpp: a subscription's buffer and its lock.
// - interest_table.hpp: the interest reported to a router.

#include "troupe/bus/bus.hpp"

#include <string>
#include <utility>

#include <caf/sec.hpp>

#include "troupe/runtime/errc.hpp"

#include "core.hpp"

namespace troupe::bus {

namespace detail {

caf::error bus_type_error(std::string_view subject, uint64_t actual, uint64_t) {
  std::string text = "the message on '";
  text += subject;
  text += actual == 0 ? "' holds raw bytes, not the requested type"
                      : "' holds another type than the requested one";
  return caf::make_error(troupe::errc::type_mismatch, std::move(text));
}

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

size_t bus_router::route_request(const bus_message_view& msg,
                                 const std::vector<std::string_view>& served,
                                 const std::shared_ptr<request_tracker>&) {
  return route(msg, served);
}

request_tracker::~request_tracker() = default;

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
