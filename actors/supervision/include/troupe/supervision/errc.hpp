#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/fwd.hpp>

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/message_types.hpp"

namespace troupe::supervision {

/// Errors raised by supervisors and pools. Values start at 1; 0 means "no
/// error". The codes it shares with other capabilities (`closed`, `timeout`,
/// `type_mismatch`) are `troupe::errc`'s. Renders as `troupe_error(<name>,
/// <context>)`.
enum class errc : uint8_t {
  /// A supervisor restarted its children more often than its intensity
  /// allows and gave up. Context: which child failed, how often, and why.
  restart_intensity = 1,
  /// A supervisor has no running child of that id. Context: the id.
  no_such_child,
  /// `join` was called on a pool that was not closed first.
  pool_running,
};

/// Returns the name of `x`, e.g. `"restart_intensity"`.
std::string to_string(errc x);

/// Registers this capability's error category with
/// `cfg`. Every `troupe::config` calls it (see `troupe::add_registrar`).
void add_message_types(caf::actor_system_config& cfg);

namespace detail {

/// Makes every `troupe::config` call `add_message_types`. @private
inline const bool registered = troupe::add_registrar(&add_message_types);

} // namespace detail

} // namespace troupe::supervision

CAF_ERROR_CODE_ENUM(troupe::supervision::errc, "troupe_sup")
