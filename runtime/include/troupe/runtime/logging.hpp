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
/// an error; the actor exits with `sec::runtime_error` whose context is the
/// exception's message, and the request it was handling, if any, gets that
/// error: `troupe::error_text` shows the message). `troupe::spawn` and
/// `node::spawn` call it for the actors they spawn; call it first thing in
/// the behavior function of an actor spawned otherwise.
void install_log_handlers(caf::scheduled_actor* self);

} // namespace troupe
