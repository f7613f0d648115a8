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

/// Registers troupe's own message types with `cfg`: the one place where they
/// are listed. `troupe::config`'s constructor calls it; programs register
/// their own types in their config's constructor with
/// `add_message_type<T>("name")`.
void add_message_types(caf::actor_system_config& cfg);

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
caf::error compare_registries(const node_info& local, const node_info& remote);

} // namespace troupe
