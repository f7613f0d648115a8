#pragma once

#include <cstdint>

#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace troupe::examples {

/// A counter that owns its value, so that any number of actors can add to it
/// without a lock and without losing an update (seed 002's `mp.Value` plus
/// `mp.Lock`, as one actor). Messaging interface:
/// - `(add_atom, int64_t x)`: adds `x`; no reply.
/// - `(get_atom) -> int64_t`: replies with the total so far.
///
/// Messages from one sender are applied in the order sent, so a sender that
/// adds and then asks sees its own additions.
using counter_actor
  = caf::typed_actor<caf::reacts_to<caf::add_atom, int64_t>,
                     caf::replies_to<caf::get_atom>::with<int64_t>>;

/// State of a `counter_actor`.
struct counter_state {
  int64_t total = 0;
};

/// Returns the behavior of a `counter_actor` starting at `initial`; spawn with
/// `sys.spawn(counter, int64_t{0})`.
counter_actor::behavior_type
counter(counter_actor::stateful_pointer<counter_state> self,
        int64_t initial = 0);

} // namespace troupe::examples
