#pragma once

#include <caf/fwd.hpp>

namespace spdlog {
class logger;
} // namespace spdlog

namespace troupe {

/// Returns the logger of the node that owns `sys`, or spdlog's default logger
/// if no node owns it. Thread-safe; in an actor: `troupe::log(self->system())`.
spdlog::logger& log(caf::actor_system& sys);

/// Routes what CAF would print to stderr for `self` into the node's log: an
/// unexpected message (logged as a warning, answered with
/// `sec::unexpected_message`) and an exception escaping a handler (logged as
/// an error; the actor exits with `sec::runtime_error` and the exception's
/// message). Call it first thing in the actor's behavior function.
void install_log_handlers(caf::scheduled_actor* self);

} // namespace troupe
