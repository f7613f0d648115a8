#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_clock.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/timespan.hpp>

#include "troupe/runtime/spawn.hpp"
#include "troupe/supervision/errc.hpp"

namespace troupe::supervision {

/// Which children a supervisor restarts when one of them fails.
enum class restart_strategy : uint8_t {
  /// Only the failed child.
  one_for_one,
  /// All children: the others are stopped first, then all start again in
  /// declaration order.
  one_for_all,
  /// The failed child and every child declared after it.
  rest_for_one,
};

/// When a supervisor restarts a child that exited.
enum class restart_policy : uint8_t {
  /// Always, even after a normal exit.
  permanent,
  /// Only after an abnormal exit: an error or an exception. A normal exit and
  /// `exit_reason::user_shutdown` end it for good.
  transient,
  /// Never; once it exits it stays gone.
  temporary,
};

/// Starts one child. The supervisor calls it when it starts and each time it
/// restarts that child, on the supervisor's thread; it must not block.
using child_factory = std::function<caf::actor(caf::actor_system&)>;

/// A child of a supervisor: its name, how to start it, when to restart it.
struct child_spec {
  std::string id;
  child_factory start;
  restart_policy restart = restart_policy::permanent;
};

/// Returns a `child_spec` for a factory `f(caf::actor_system&)` that returns
/// any actor handle, typed or not. Spawn with `troupe::spawn(sys, ...)` in
/// the factory (or use `actor_child`), so that an exception in the child is
/// logged and reaches the request it was handling with its message; a child
/// spawned with `sys.spawn` dies with a bare `sec::runtime_error` and CAF
/// prints the exception on the console.
template <class F>
child_spec child(std::string id, F f,
                 restart_policy restart = restart_policy::permanent) {
  return child_spec{std::move(id),
                    [f = std::move(f)](caf::actor_system& sys) {
                      return caf::actor_cast<caf::actor>(f(sys));
                    },
                    restart};
}

/// Returns a `child_spec` that starts the function-based actor
/// `fn(self, xs...)` with `troupe::spawn` (its exceptions logged, their
/// messages passed on to requesters). Permanent; set `restart` on the
/// result for another policy.
template <class F, class... Ts>
child_spec actor_child(std::string id, F fn, Ts... xs) {
  return child_spec{std::move(id),
                    [fn, xs...](caf::actor_system& sys) {
                      return caf::actor_cast<caf::actor>(
                        troupe::spawn(sys, fn, xs...));
                    },
                    restart_policy::permanent};
}

/// Asks a supervisor for a child's stable handle (see `supervisor`).
using child_atom = caf::atom_constant<caf::atom("child")>;

/// How a supervisor restarts, and how often it may.
struct supervisor_flags {
  restart_strategy strategy = restart_strategy::one_for_one;
  /// At most this many restarts within `period`; one more and the supervisor
  /// itself fails with `errc::restart_intensity` (its own supervisor, if any,
  /// then decides).
  size_t intensity = 3;
  caf::timespan period = std::chrono::seconds(5);
  /// Delay before a restart; doubles with each restart that the period still
  /// remembers, up to `max_backoff`. Zero: restart at once.
  caf::timespan backoff = caf::timespan{0};
  caf::timespan max_backoff = std::chrono::seconds(1);
  /// How long a child stopped for a one_for_all or rest_for_one restart gets
  /// to exit before it is killed.
  caf::timespan shutdown_timeout = std::chrono::seconds(5);
};

/// One child as its supervisor sees it. @private
struct supervised_child {
  child_spec spec;
  caf::actor hdl;        // null while the child is not running
  bool stopping = false; // told to exit for a group restart
  caf::actor_addr proxy; // the stable handle, once asked for; weak
};

/// State of a supervisor. Invariants: (1) every running child is linked to
/// the supervisor and held by `hdl`, so CAF never ends it as unreachable;
/// (2) `pending_stops` counts the children with `stopping == true`.
struct supervisor_state {
  supervisor_flags flags;
  std::vector<supervised_child> children;
  std::vector<caf::actor_clock::time_point> restarts; // within `period`
  std::vector<size_t> restart_group; // indices to start once stops are done
  size_t pending_stops = 0;
  uint64_t generation = 0; // identifies the current delayed restart
  static inline const char* name = "troupe.supervisor";
};

/// An Erlang-style supervisor: starts `children` in order, links to them and
/// restarts them by `flags`. A child that throws, or exits with an error, is
/// restarted; one that exits normally only if it is `permanent`. Supervisors
/// nest: a supervisor is a child like any other.
///
/// Messaging interface:
/// - `(get_atom, std::string id) -> caf::actor`: the child's current handle;
///   `errc::no_such_child` if there is no such child or it is not running
///   (between a failure and its restart, or gone for good). A restarted
///   child has a new handle.
/// - `(child_atom, std::string id) -> caf::actor`: the child's *stable*
///   handle, which stays valid across restarts (like a registered name in
///   Erlang): it forwards every message to the child's current incarnation.
///   A message that arrives while the child restarts waits for the next
///   incarnation, and so does a request that the failed incarnation never
///   took from its mailbox (a plain message there is lost with it, as in
///   Erlang). A request the child was handling when it failed gets the
///   child's error (for an exception, `sec::runtime_error` with its message:
///   see `troupe::spawn`) and is not retried. While the child is not running
///   and will not be restarted (its policy, or the supervisor stopped), a
///   request fails with `errc::no_such_child` saying so, and a plain message
///   is dropped. The child sees the handle, not the requester, as the sender
///   of a request. `errc::no_such_child` for an id the supervisor does not
///   have. See also `child_handle`.
/// - `(get_atom) -> std::vector<std::string>`: the ids of the running
///   children, in declaration order.
///
/// When the supervisor exits (told to, or after too many restarts), its
/// children exit with it through their links. Keep a handle to the
/// supervisor or a stable child handle: like every CAF actor, a supervisor
/// that nothing references ends, and its children with it (so a program
/// whose `troupe::run` function returns does not wait for it).
/// Spawn with `node.spawn(supervisor, flags, children)`.
caf::behavior supervisor(caf::stateful_actor<supervisor_state>* self,
                         supervisor_flags flags,
                         std::vector<child_spec> children);

/// Returns the stable handle of the child `id` of `sup` (`child_atom`),
/// waiting up to `timeout` for the supervisor's answer. Blocks: call it from
/// a thread that is not an actor's; an actor sends `(child_atom, id)`.
[[nodiscard]] caf::expected<caf::actor>
child_handle(caf::actor_system& sys, const caf::actor& sup,
             const std::string& id,
             caf::timespan timeout = std::chrono::seconds(10));

} // namespace troupe::supervision
