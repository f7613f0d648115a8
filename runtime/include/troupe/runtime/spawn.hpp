#pragma once

#include <type_traits>
#include <utility>

#include <caf/actor_config.hpp>
#include <caf/actor_system.hpp>
#include <caf/behavior.hpp>
#include <caf/detail/init_fun_factory.hpp>
#include <caf/infer_handle.hpp>
#include <caf/local_actor.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/spawn_options.hpp>

#include "troupe/runtime/logging.hpp"

namespace troupe {

/// Spawns the function-based actor `fun(self, xs...)` as
/// `sys.spawn<Os>(fun, xs...)` does, with troupe's handlers installed before
/// `fun` runs (see `install_log_handlers`): an exception that escapes one of
/// its handlers is logged through the node's logger and ends the actor with
/// an error that carries the exception's message, which a request being
/// handled receives; an unexpected message is logged and answered with
/// `caf::sec::unexpected_message`. CAF prints neither on stderr. Handlers that
/// `fun` sets itself replace these, as they are set later. Blocking actors
/// get no handlers (CAF has none for them).
///
/// `node::spawn` spawns this way; a supervisor's child factory should too
/// (see `troupe::supervision::actor_child`). Thread-safe, as `sys.spawn`.
template <caf::spawn_options Os = caf::no_spawn_options, class F, class... Ts>
auto spawn(caf::actor_system& sys, F fun, Ts&&... xs) {
  using impl = caf::infer_impl_from_fun_t<F>;
  static_assert(caf::detail::spawnable<F, impl, Ts...>(),
                "cannot spawn function-based actor with given arguments");
  caf::detail::init_fun_factory<impl, F> fac;
  auto init = fac(std::move(fun), std::forward<Ts>(xs)...);
  caf::actor_config cfg;
  cfg.init_fun = caf::actor_config::init_fun_type{
    [init = std::move(init)](caf::local_actor* self) mutable -> caf::behavior {
      if constexpr (std::is_base_of_v<caf::scheduled_actor, impl>)
        install_log_handlers(static_cast<impl*>(self));
      return init(self);
    }};
  return sys.spawn_class<impl, Os>(cfg);
}

} // namespace troupe
