#pragma once

#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>

namespace caf {
class actor_system_config;
} // namespace caf

namespace troupe {

/// What a node tells a peer about itself when they connect, so that the two
/// can refuse to talk if their message registries differ (CAF 0.17 would
/// silently deliver empty messages instead).
struct node_info {
  /// The node's name (`troupe.name`).
  std::string name;
  /// `registry_fingerprint()` of the node's config.
  std::string fingerprint;
  /// `message_types()` of the node's config.
  std::vector<std::string> types;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_info& x) {
  return f(caf::meta::type_name("troupe.node_info"), x.name, x.fingerprint,
           x.types);
}

/// Registers the runtime's own message types (`node_info`) with `cfg`.
/// `troupe::config`'s constructor calls it, then every registrar (see
/// `add_registrar`); programs register their own types in their config's
/// constructor with `add_message_type<T>("name")`.
void add_message_types(caf::actor_system_config& cfg);

/// A function that registers one capability's message types and error
/// category with a config.
using registrar = void (*)(caf::actor_system_config&);

/// Makes every `troupe::config` constructed from now on call `f` in its
/// constructor; a function added twice runs once. Returns true. Each
/// capability calls it from an inline variable in its `errc.hpp`, so a
/// program that includes the capability's headers has its types and errors
/// registered without naming them, and the runtime names none of them.
/// Thread-safe.
bool add_registrar(registrar f);

namespace detail {

/// Calls every function given to `add_registrar`, in the order added.
/// @private
void run_registrars(caf::actor_system_config& cfg);

} // namespace detail

/// Returns the names of all message types registered with `cfg`, sorted,
/// without the `std::vector<T>` and `stream<T>` that CAF adds for each `T`.
std::vector<std::string> message_types(const caf::actor_system_config& cfg);

/// Returns the hex SHA-256 of `message_types(cfg)`, one name per line: equal
/// on two nodes exactly when they registered the same type names.
std::string registry_fingerprint(const caf::actor_system_config& cfg);

/// Returns `node_info` for a node named `name` with config `cfg`.
node_info make_node_info(std::string name, const caf::actor_system_config& cfg);

/// Returns an error of code `errc::registry_mismatch` naming the types that
/// only one side registered, or no error if the registries match.
[[nodiscard]] caf::error compare_registries(const node_info& local,
                                            const node_info& remote);

} // namespace troupe
