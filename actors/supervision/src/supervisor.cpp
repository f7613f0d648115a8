#include "troupe/supervision/supervisor.hpp"

#include <algorithm>
#include <deque>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/deep_to_string.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/message_view.hpp>
#include <caf/response_promise.hpp>
#include <caf/system_messages.hpp>
#include <spdlog/spdlog.h>

#include "troupe/runtime/blocking_request.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/logging.hpp"

namespace troupe::supervision {

namespace {

using restart_atom = caf::atom_constant<caf::atom("restart")>;
using self_ptr = caf::stateful_actor<supervisor_state>*;

// -- stable child handles -----------------------------------------------------

// Tells a stable handle where its child is: `(sv_child_atom, hdl, pending)`,
// with `hdl` null while the child is not running and `pending` whether it
// is going to run again.
using sv_child_atom = caf::atom_constant<caf::atom("sv_child")>;

// Never sent: see `forward_request`.
using sv_never_atom = caf::atom_constant<caf::atom("sv_never")>;

// State of a stable child handle. Invariants: (1) `waiting` is empty unless
// `target` is null and `pending` is true; (2) `sup` is null once the
// supervisor is gone, and then `pending` is false.
struct proxy_state {
  struct waiting_msg {
    caf::message msg;
    caf::response_promise rp;
  };
  std::string id;
  caf::actor sup;    // a stable handle keeps its supervisor alive
  caf::actor target; // the child's current incarnation, or null
  bool pending = false;
  std::string gone_why; // why no incarnation will come, once `sup` is gone
  std::deque<waiting_msg> waiting;
  static inline const char* name = "troupe.supervisor.child";
};

using proxy_ptr = caf::stateful_actor<proxy_state>*;

caf::error not_running(const proxy_state& st) {
  return caf::make_error(
    errc::no_such_child,
    "child '" + st.id + "' is not running and will not be restarted ("
      + (st.gone_why.empty() ? "its restart policy" : st.gone_why) + ")");
}

void dispatch(proxy_ptr self, caf::message msg, caf::response_promise rp);

// Sends the request `msg` to `to` on behalf of `rp`'s requester and passes
// the answer on. A request `to` never took (it ended first) goes to the next
// incarnation. Without a timeout of its own: the requester has one, and a
// child that drops its response promise leaves only this handler behind.
void forward_request(proxy_ptr self, const caf::actor& to, caf::message msg,
                     caf::response_promise rp) {
  auto addr = to.address();
  // No handler takes an answer of any type, but CAF hands one that no
  // handler took to the error handler as `sec::unexpected_response` with the
  // answer as its context: `sv_never` matches nothing, so every answer that
  // is not an error arrives that way. (A child answering with an error of
  // that code itself looks the same; CAF makes those only for this case.)
  self->request(to, caf::infinite, msg)
    .then([](sv_never_atom) {},
          [self, addr, msg, rp](caf::error& err) mutable {
            if (err == caf::sec::unexpected_response) {
              rp.deliver(err.context());
              return;
            }
            // CAF bounces a request that a dead actor never took with
            // request_receiver_down and no sender; the same error from the
            // child itself is an answer.
            if (err != caf::sec::request_receiver_down
                || self->current_sender() != nullptr) {
              rp.deliver(std::move(err)); // e.g. the child threw on this one
              return;
            }
            auto& st = self->state;
            if (st.target && st.target.address() == addr) {
              // Ended before the supervisor could tell us: it will.
              st.target = nullptr;
              st.pending = st.sup != nullptr;
            }
            dispatch(self, std::move(msg), std::move(rp));
          });
}

// Forwards `msg` to the current incarnation, keeps it for the next one, or
// fails it.
void dispatch(proxy_ptr self, caf::message msg, caf::response_promise rp) {
  auto& st = self->state;
  if (st.target) {
    if (rp.async())
      rp.delegate(st.target, std::move(msg)); // keeps the original sender
    else
      forward_request(self, st.target, std::move(msg), std::move(rp));
  } else if (st.pending) {
    st.waiting.push_back(
      proxy_state::waiting_msg{std::move(msg), std::move(rp)});
  } else if (!rp.async()) {
    rp.deliver(not_running(st));
  } // else: dropped, as a message to an actor that has exited
}

// Applies an update from the supervisor: delivers or fails what waits.
void set_target(proxy_ptr self, caf::actor hdl, bool pending) {
  auto& st = self->state;
  st.target = std::move(hdl);
  st.pending = !st.target && pending;
  if (st.pending)
    return;
  auto xs = std::move(st.waiting);
  st.waiting.clear();
  for (auto& x : xs)
    dispatch(self, std::move(x.msg), std::move(x.rp));
}

// The stable handle of child `id` of `sup`; starts out as told.
caf::behavior child_proxy(proxy_ptr self, std::string id, caf::actor sup,
                          caf::actor hdl, bool pending) {
  auto& st = self->state;
  st.id = std::move(id);
  st.sup = std::move(sup);
  self->monitor(st.sup);
  set_target(self, std::move(hdl), pending);
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& s = self->state;
    if (!s.sup || msg.source != s.sup.address())
      return;
    s.gone_why = "its supervisor stopped: " + self->system().render(msg.reason);
    s.sup = nullptr;
    set_target(self, nullptr, false);
  });
  self->set_default_handler(
    [self](caf::scheduled_actor*,
           caf::message_view& x) -> caf::result<caf::message> {
      auto rp = self->make_response_promise();
      dispatch(self, x.move_content_to_message(), rp);
      return rp;
    });
  return {
    [self](sv_child_atom, caf::actor& x, bool comes) {
      set_target(self, std::move(x), comes);
    },
  };
}

// Returns whether child `i` is going to be started again.
bool comes_back(const supervisor_state& st, size_t i) {
  auto& group = st.restart_group;
  return std::find(group.begin(), group.end(), i) != group.end();
}

// Tells child `i`'s stable handle, if there is one, where the child is now.
void notify_proxy(self_ptr self, size_t i) {
  auto& c = self->state.children[i];
  if (auto p = caf::actor_cast<caf::actor>(c.proxy))
    self->send(p, sv_child_atom::value, c.hdl,
               !c.hdl && comes_back(self->state, i));
}

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
  notify_proxy(self, i);
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
    notify_proxy(self, i);
    if (--st.pending_stops == 0)
      schedule_restart(self);
    return;
  }
  if (!should_restart(c.spec.restart, reason)) {
    log(self->system())
      .debug("supervisor #{}: child '{}' exited ({}), not restarted",
             self->id(), c.spec.id,
             reason ? self->system().render(reason) : "normally");
    notify_proxy(self, i);
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
  notify_proxy(self, i);
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
  install_log_handlers(self);
  auto& st = self->state;
  st.flags = flags;
  for (auto& spec : children)
    st.children.push_back(
      supervised_child{std::move(spec), nullptr, false, caf::actor_addr{}});
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
    [self](child_atom, const std::string& id) -> caf::result<caf::actor> {
      auto& xs = self->state.children;
      for (size_t i = 0; i < xs.size(); ++i) {
        auto& c = xs[i];
        if (c.spec.id != id)
          continue;
        if (auto p = caf::actor_cast<caf::actor>(c.proxy))
          return p;
        auto p = troupe::spawn(self->system(), child_proxy, id,
                               caf::actor_cast<caf::actor>(self), c.hdl,
                               !c.hdl && comes_back(self->state, i));
        c.proxy = p.address();
        return p;
      }
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

caf::expected<caf::actor> child_handle(caf::actor_system& sys,
                                       const caf::actor& sup,
                                       const std::string& id,
                                       caf::timespan timeout) {
  return blocking_request<caf::actor>(sys, sup, timeout, child_atom::value, id);
}

} // namespace troupe::supervision
