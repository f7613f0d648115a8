#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/fwd.hpp>

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/message_types.hpp"

namespace troupe::queue {

/// Errors raised by the task queue. Values start at 1; 0 means "no error". The
/// codes it shares with other capabilities (`closed`, `timeout`,
/// `type_mismatch`) are `troupe::errc`'s. Renders as `troupe_error(<name>,
/// <context>)`.
enum class errc : uint8_t {
  /// The master serves no queue of that name. Context: the name.
  no_such_queue = 1,
  /// A stored queue cannot be used: not a troupe store, made for another
  /// queue, or SQLite failed. Context: the path and the cause.
  store_failed,
};

/// Returns the name of `x`, e.g. `"no_such_queue"`.
std::string to_string(errc x);

/// Registers this capability's error category and message types with
/// `cfg`. Every `troupe::config` calls it (see `troupe::add_registrar`).
void add_message_types(caf::actor_system_config& cfg);

namespace detail {

/// Makes every `troupe::config` call `add_message_types`. @private
inline const bool registered = troupe::add_registrar(&add_message_types);

} // namespace detail

} // namespace troupe::queue

CAF_ERROR_CODE_ENUM(troupe::queue::errc, "troupe_q")
