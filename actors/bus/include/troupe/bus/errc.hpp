#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/fwd.hpp>

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/message_types.hpp"

namespace troupe::bus {

/// Errors raised by the message bus. Values start at 1; 0 means "no error". The
/// codes it shares with other capabilities (`closed`, `timeout`,
/// `type_mismatch`) are `troupe::errc`'s. Renders as `troupe_error(<name>,
/// <context>)`.
enum class errc : uint8_t {
  /// A subject or subscription pattern is malformed. Context: the subject
  /// and what is wrong with it.
  invalid_subject = 1,
  /// A request found no subscriber for its subject, or every node it was
  /// forwarded to found none (their responders had gone). Context: the
  /// subject, and which node found none.
  no_responders,
  /// Every link a request was forwarded over went down before the reply
  /// (the responder's node died, or this node's own link to it): the
  /// responder may or may not have got the request. Context: the subject,
  /// and which peer was lost and why.
  link_lost,
};

/// Returns the name of `x`, e.g. `"invalid_subject"`.
std::string to_string(errc x);

/// Registers this capability's error category with
/// `cfg`. Every `troupe::config` calls it (see `troupe::add_registrar`).
void add_message_types(caf::actor_system_config& cfg);

namespace detail {

/// Makes every `troupe::config` call `add_message_types`. @private
inline const bool registered = troupe::add_registrar(&add_message_types);

} // namespace detail

} // namespace troupe::bus

CAF_ERROR_CODE_ENUM(troupe::bus::errc, "troupe_bus")
