#pragma once

// Private: the node's logger plumbing.

#include <memory>

#include <caf/fwd.hpp>

namespace spdlog {
class logger;
} // namespace spdlog

namespace troupe {
class config;
} // namespace troupe

namespace troupe::detail {

/// Returns the logger that `cfg` asks for, named `cfg.name`, not registered
/// in spdlog's global registry (two nodes may share a name in one process).
/// @throws spdlog::spdlog_ex if the log file cannot be opened.
std::shared_ptr<spdlog::logger> make_logger(const config& cfg);

/// Makes `troupe::log(sys)` return `lg`.
void register_logger(caf::actor_system& sys,
                     std::shared_ptr<spdlog::logger> lg);

/// Undoes `register_logger`.
void unregister_logger(caf::actor_system& sys);

} // namespace troupe::detail
