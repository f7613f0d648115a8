#include "counter.hpp"

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace troupe::examples {

counter_actor::behavior_type
counter(counter_actor::stateful_pointer<counter_state> self, int64_t initial) {
  self->state.total = initial;
  return {
    [=](caf::add_atom, int64_t x) { self->state.total += x; },
    [=](caf::get_atom) { return self->state.total; },
  };
}

} // namespace troupe::examples
