#include "troupe/supervision/supervisor.hpp"

#include <algorithm>

#include <caf/actor_system.hpp>
#include <caf/deep_to_string.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/system_messages.hpp>
#include <spdlog/spdlog.h>

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/logging.hpp"

namespace troupe::supervision {

namespace {

using restart_atom = caf::atom_constant<caf::atom("restart")>;
using self_ptr = caf::stateful_actor<supervisor_state>*;

// Returns whether a child of `policy` that exited for `reason` comes back.
bool should_restart(restart_policy policy, const caf::error& reason) {
  switch (policy) {
    case restart_policy::permanent:
      return true;
    case restart_policy::transient:
      return reason && reason != caf::exit_reason::user_shutdown;
    case restart_policy::temporary:
      return false;
  }
  return false;
}

// Starts child `i` and links to it. Returns false if the factory gave no
// actor (the supervisor has then quit).
bool start_child(self_ptr self, size_t i) {
  auto& c = self->state.children[i];
  c.hdl = c.spec.start(self->system());
  if (!c.hdl) {
    self->quit(caf::make_error(caf::sec::runtime_error,
                               "the factory of child '" + c.spec.id
                                 + "' returned no actor"));
    return false;
  }
  self->link_to(c.hdl);
  return true;
}

// Starts every child in the pending restart group, in declaration order.
void restart_group(self_ptr self) {
  auto group = std::move(self->state.restart_group);
  self->state.restart_group.clear();
  for (auto i : group)
    if (!self->state.children[i].hdl && !start_child(self, i))
      return;
}

// Returns the delay before the next restart: `backoff` doubled for each
// restart the period still remembers beyond the first, at most max_backoff.
caf::timespan restart_delay(const supervisor_state& st) {
  auto delay = st.flags.backoff;
  for (size_t i = 1; i < st.restarts.size() && delay < st.flags.max_backoff;
       ++i)
    delay *= 2;
  return std::min(delay, st.flags.max_backoff);
}

// Restarts the pending group now or after the backoff.
void schedule_restart(self_ptr self) {
  auto& st = self->state;
  auto delay = restart_delay(st);
  if (delay <= caf::timespan{0}) {
    restart_group(self);
    return;
  }
  self->delayed_send(self, delay, restart_atom::value, ++st.generation);
}

// Counts a restart against the intensity; returns false if that was one too
// many.
bool record_restart(self_ptr self) {
  auto& st = self->state;
  auto now = self->clock().now();
  auto horizon = now - st.flags.period;
  st.restarts.erase(std::remove_if(st.restarts.begin(), st.restarts.end(),
                                   [&](auto t) { return t <= horizon; }),
                    st.restarts.end());
  st.restarts.push_back(now);
  return st.restarts.size() <= st.flags.intensity;
}

// Handles the exit of child `i` for `reason`.
void on_child_exit(self_ptr self, size_t i, const caf::error& reason) {
  auto& st = self->state;
  auto& c = st.children[i];
  c.hdl = nullptr;
  if (c.stopping) { // we stopped it for a group restart
    c.stopping = false;
    if (--st.pending_stops == 0)
      schedule_restart(self);
    return;
  }
  if (!should_restart(c.spec.restart, reason)) {
    log(self->system())
      .debug("supervisor #{}: child '{}' exited ({}), not restarted",
             self->id(), c.spec.id,
             reason ? self->system().render(reason) : "normally");
    return;
  }
  if (!record_restart(self)) {
    auto what = "child '" + c.spec.id + "' failed more than "
                + std::to_string(st.flags.intensity) + " time(s) in "
                + caf::deep_to_string(st.flags.period)
                + "; last reason: " + self->system().render(reason);
    log(self->system()).error("supervisor #{} gives up: {}", self->id(), what);
    self->quit(caf::make_error(errc::restart_intensity, std::move(what)));
    return;
  }
  log(self->system())
    .warn("supervisor #{}: child '{}' exited ({}); restarting", self->id(),
          c.spec.id, reason ? self->system().render(reason) : "normally");
  // Which children restart with it.
  size_t first = 0;
  size_t last = st.children.size();
  switch (st.flags.strategy) {
    case restart_strategy::one_for_one:
      first = i;
      last = i + 1;
      break;
    case restart_strategy::one_for_all:
      break;
    case restart_strategy::rest_for_one:
      first = i;
      break;
  }
  for (auto j = first; j < last; ++j) {
    auto& other = st.children[j];
    if (j != i && other.hdl) {
      other.stopping = true;
      ++st.pending_stops;
      self->unlink_from(other.hdl); // its exit comes as a down message
      self->monitor(other.hdl);
      self->send_exit(other.hdl, caf::exit_reason::user_shutdown);
      // A child that ignores the request is killed (no handler can trap a
      // kill); if it exits in time this reaches a dead actor and is dropped.
      self->delayed_send(
        other.hdl, st.flags.shutdown_timeout,
        caf::exit_msg{self->address(), caf::exit_reason::kill});
    }
    // A restart may already be pending (backoff, or children still
    // stopping): the group grows, it is not replaced.
    auto& group = st.restart_group;
    if ((j == i || other.spec.restart != restart_policy::temporary)
        && std::find(group.begin(), group.end(), j) == group.end())
      group.push_back(j);
  }
  std::sort(st.restart_group.begin(), st.restart_group.end());
  if (st.pending_stops == 0)
    schedule_restart(self);
}

// Returns the index of the child whose handle has address `addr`, or -1.
ptrdiff_t find_child(const supervisor_state& st, const caf::actor_addr& addr) {
  for (size_t i = 0; i < st.children.size(); ++i)
    if (st.children[i].hdl && st.children[i].hdl.address() == addr)
      return static_cast<ptrdiff_t>(i);
  return -1;
}

} // namespace

caf::behavior supervisor(caf::stateful_actor<supervisor_state>* self,
                         supervisor_flags flags,
                         std::vector<child_spec> children) {
  auto& st = self->state;
  st.flags = flags;
  for (auto& spec : children)
    st.children.push_back(supervised_child{std::move(spec), nullptr, false});
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto i = find_child(self->state, msg.source);
    if (i < 0) {
      // From our parent or anyone else: an abnormal exit ends us, and our
      // children with us through their links.
      if (msg.reason)
        self->quit(std::move(msg.reason));
      return;
    }
    on_child_exit(self, static_cast<size_t>(i), msg.reason);
  });
  self->set_down_handler([self](caf::down_msg& msg) {
    // Children stopped for a group restart report here (no longer linked).
    auto i = find_child(self->state, msg.source);
    if (i >= 0 && self->state.children[static_cast<size_t>(i)].stopping)
      on_child_exit(self, static_cast<size_t>(i), msg.reason);
  });
  for (size_t i = 0; i < st.children.size(); ++i)
    if (!start_child(self, i))
      return {};
  return {
    [self](restart_atom, uint64_t generation) {
      if (generation == self->state.generation)
        restart_group(self);
    },
    [self](caf::get_atom, const std::string& id) -> caf::result<caf::actor> {
      for (auto& c : self->state.children)
        if (c.spec.id == id && c.hdl)
          return c.hdl;
      return caf::make_error(errc::no_such_child, id);
    },
    [self](caf::get_atom) {
      std::vector<std::string> ids;
      for (auto& c : self->state.children)
        if (c.hdl)
          ids.push_back(c.spec.id);
      return ids;
    },
  };
}

} // namespace troupe::supervision
