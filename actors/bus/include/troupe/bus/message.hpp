#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/meta/type_name.hpp>

#include "troupe/bus/errc.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/payload.hpp"

namespace troupe::bus {

namespace detail {

/// Returns `troupe::errc::type_mismatch` for a payload that does not hold the
/// type tagged `expected`. @private
[[nodiscard]] caf::error bus_type_error(std::string_view subject,
                                        uint64_t actual, uint64_t expected);

} // namespace detail

/// A message as it travels on a bus, without owning its parts: what
/// `bus::publish` takes apart and what a router (`bus_router`) sees. The
/// referenced strings must outlive the view.
struct bus_message_view {
  std::string_view subject;
  /// The subject to send an answer to; empty if none is expected.
  std::string_view reply_to;
  /// Raw bytes (or text) if `type` is 0, else a serialized value.
  std::string_view payload;
  /// 0 for raw bytes; else the tag of the payload's type.
  uint64_t type = 0;
};

/// A message on a bus, as a subscriber's callback receives it and as
/// `bus::request` returns the reply. Payloads are raw bytes or text
/// (`type == 0`), or a value of any type that CAF can serialize (has an
/// `inspect` overload), published with `bus::publish(subject, value)` and
/// read back with `get<T>()`.
///
/// A plain value type; not thread-safe for concurrent mutation.
struct bus_message {
  /// The subject it was published on, e.g. `orders.eu.created`.
  std::string subject;
  /// The subject to send an answer to (see `bus::reply`); empty if none.
  std::string reply_to;
  /// The bytes: raw, or a value serialized with CAF's binary serializer.
  std::string payload;
  /// 0 for raw bytes; else identifies the payload's type (see `get<T>()`).
  uint64_t type = 0;

  /// Returns a view of this message, valid while it lives unchanged.
  bus_message_view view() const noexcept {
    return {subject, reply_to, payload, type};
  }

  /// Returns whether the payload holds a `T` (published as one).
  template <class T>
  bool is() const noexcept {
    return type == troupe::type_tag<T>();
  }

  /// Returns the `T` in the payload, or `troupe::errc::type_mismatch` if the
  /// message holds raw bytes or another type (or does not decode).
  /// @pre `T` is default-constructible and inspectable.
  template <class T>
  [[nodiscard]] caf::expected<T> get() const {
    auto expected_tag = troupe::type_tag<T>();
    if (type != expected_tag)
      return detail::bus_type_error(subject, type, expected_tag);
    T x{};
    if (troupe::from_bytes(payload.data(), payload.size(), x, true))
      return caf::make_error(troupe::errc::type_mismatch,
                             "cannot decode the payload of a message on '"
                               + subject + "'");
    return x;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, bus_message& x) {
  return f(caf::meta::type_name("troupe.bus_message"), x.subject, x.reply_to,
           x.payload, x.type);
}

} // namespace troupe::bus
