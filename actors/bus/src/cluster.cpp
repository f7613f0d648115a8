// `bus_cluster`: joins a bus to the buses of other nodes (see
// bus/cluster.hpp). This file holds the dialers, which keep the outbound
// links up, and the members of `bus_cluster`. The rest of the cluster:
//
// - cluster_core.hpp: the state publishers and the router share; routing a
//   published message to the links that want it.
// - cluster_router.hpp: the router actor, one per node: links, interest
//   exchange, batches out and in.
// - wire.hpp: the format of the batches between routers.
// - interest_table.hpp: what each peer advertised.

#include "troupe/bus/cluster.hpp"

#include <chrono>
#include <mutex>
#include <shared_mutex>

#include <caf/actor_system.hpp>
#include <caf/after.hpp>
#include <caf/deep_to_string.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <spdlog/spdlog.h>

#include "troupe/bus/bus.hpp"
#include "troupe/runtime/dialer.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/net.hpp"
#include "troupe/runtime/node.hpp"

#include "cluster_core.hpp"
#include "cluster_router.hpp"

namespace troupe::bus {

namespace {

using detail::bus_dialed_atom;
using detail::bus_dialer_atom;
using detail::bus_drain_atom;
using detail::bus_linked_atom;
using detail::bus_local_atom;
using detail::bus_lost_atom;
using detail::bus_redial_atom;
using detail::bus_unlinked_atom;
using detail::core_ptr;
using detail::router;

// -- dialers ------------------------------------------------------------------

// A dialer keeps one outbound link up: it makes connect attempts
// (`troupe::dial`), hands the peer's router to the router, which says hello,
// and starts over after a failure or a loss. Messages:
// - to the router: `(bus_dialer, id, address)` first, then `(bus_dialed, id,
//   remote, address)` for each peer reached;
// - from the router: `(bus_linked)`: the hello went through; `(bus_unlinked,
//   why)`: the peer was reached but no link came of it (refused, or the hello
//   failed): back off; `(bus_lost, why)`: a link that was up went down: start
//   over soon;
// - from itself: `(bus_redial)`: dial now, unless linked.

struct dialer_state {
  core_ptr core;
  caf::actor router;
  uint64_t id = 0;
  std::string host;
  uint16_t port = 0;
  backoff delays;
  bool linked = false;

  static inline const char* name = "troupe.bus_dialer";
};

using dialer_ptr = caf::stateful_actor<dialer_state>*;

std::string address_of(const dialer_state& st) {
  return st.host + ":" + std::to_string(st.port);
}

// `transient`: the peer said "not now" (busy, or the link was lost in its
// handshake, as happens to a starved process); `connect` waits on.
void dial_failed(dialer_ptr self, const std::string& why,
                 bool transient = false) {
  auto& st = self->state;
  {
    std::lock_guard<std::mutex> guard{st.core->wait_mtx};
    auto& status = st.core->dials[st.id];
    status.last_error = why;
    ++status.failures;
    if (!transient)
      ++status.refusals;
    st.core->wait_cv.notify_all();
  }
  auto delay = st.delays.next();
  troupe::log(self->system())
    .warn("bus: cannot link to {}: {}; retrying in {} ms", address_of(st), why,
          std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
  self->delayed_send(self, delay, bus_redial_atom::value);
}

caf::behavior dialer(dialer_ptr self, core_ptr core, caf::actor router,
                     uint64_t id, std::string host, uint16_t port) {
  install_log_handlers(self);
  auto& st = self->state;
  st.core = std::move(core);
  st.router = std::move(router);
  st.id = id;
  st.host = std::move(host);
  st.port = port;
  st.delays = backoff{st.core->opts.reconnect};
  self->send(st.router, bus_dialer_atom::value, st.id, address_of(st));
  self->send(self, bus_redial_atom::value);
  return {
    // Dial now, unless linked.
    [=](bus_redial_atom) {
      auto& s = self->state;
      if (!s.linked)
        dial(self->system(), s.core->cfg, s.host, s.port,
             s.core->opts.reconnect.connect_timeout,
             caf::actor_cast<caf::actor>(self));
    },
    // The attempt reached the peer's router, or failed.
    [=](dial_ok_atom, caf::actor& remote) {
      auto& s = self->state;
      self->send(s.router, bus_dialed_atom::value, s.id, std::move(remote),
                 address_of(s));
    },
    [=](dial_empty_atom) {
      dial_failed(self, address_of(self->state) + " publishes no actor");
    },
    [=](dial_failed_atom, const caf::error& why) {
      dial_failed(self, error_text(why), why == troupe::errc::busy);
    },
    // The router's news of the link.
    [=](bus_linked_atom) {
      auto& s = self->state;
      s.linked = true;
      s.delays.reset();
    },
    // Reached, but refused (or the hello failed): back off.
    [=](bus_unlinked_atom, const std::string& why, bool transient) {
      self->state.linked = false;
      dial_failed(self, why, transient);
    },
    // A link that was up went down: start over soon.
    [=](bus_lost_atom, const std::string& why) {
      auto& s = self->state;
      s.linked = false;
      s.delays.reset();
      {
        std::lock_guard<std::mutex> guard{s.core->wait_mtx};
        s.core->dials[s.id].last_error = "lost the link: " + why;
      }
      self->delayed_send(self, s.delays.current(), bus_redial_atom::value);
    },
  };
}

} // namespace

// -- bus_cluster
// ----------------------------------------------------------------

bus_cluster::bus_cluster(node& host, bus& b, const net_config& cfg,
                         cluster_options opts)
    : core_(
      std::make_shared<detail::cluster_core>(host, cfg, std::move(opts))) {
  // Not detached: CAF 0.17's shutdown waits until every detached actor is
  // released, and a detached router was sometimes still held then (1 exit in
  // about 20 hung).
  router_ = host.system().spawn(router, core_, &b);
  core_->router_addr = router_.address();
  host.track(router_.address());
  for (auto& x : b.attach_router(core_))
    caf::anon_send(router_, bus_local_atom::value, true, x.pattern,
                   x.queue_group);
}

bus_cluster::~bus_cluster() {
  core_->closed = true;
  auto& sys = core_->host.system();
  {
    caf::scoped_actor self{sys};
    self->monitor(router_);
    self->send_exit(router_, caf::exit_reason::user_shutdown);
    // The router calls the bus, which ends after the cluster: wait for it
    // (it may be waiting for room in a subscription, at most its max_wait).
    self->receive([](const caf::down_msg&) {},
                  caf::after(std::chrono::seconds(30)) >> [] {});
  }
}

caf::expected<uint16_t> bus_cluster::listen(uint16_t port) {
  return troupe::listen(core_->host.system(), router_, core_->cfg, port);
}

caf::error bus_cluster::connect(const std::string& host, uint16_t port,
                                caf::timespan wait) {
  if (port == 0)
    return caf::make_error(troupe::errc::invalid_option_value,
                           "cannot connect to port 0 of " + host);
  uint64_t did = 0;
  {
    std::lock_guard<std::mutex> guard{core_->wait_mtx};
    did = core_->next_dial++;
    core_->dials[did] = {};
  }
  auto& sys = core_->host.system();
  sys.spawn(dialer, core_, router_, did, host, port);
  if (wait <= caf::timespan{0})
    return caf::none;
  std::unique_lock<std::mutex> guard{core_->wait_mtx};
  auto& status = core_->dials[did];
  if (!core_->wait_cv.wait_for(
        guard, wait, [&] { return status.up || status.refusals > 0; })) {
    auto what = "no link to " + host + ":" + std::to_string(port) + " within "
                + caf::deep_to_string(wait);
    if (status.failures > 0)
      what += " (last attempt: " + status.last_error + ")";
    return caf::make_error(troupe::errc::timeout, what);
  }
  if (status.up)
    return caf::none;
  auto why = status.last_error;
  auto prefix = host + ":" + std::to_string(port) + ": ";
  if (why.compare(0, prefix.size(), prefix) == 0)
    why.erase(0, prefix.size());
  return caf::make_error(troupe::errc::connect_failed,
                         "cannot link to " + host + ":" + std::to_string(port)
                           + ": " + why);
}

bool bus_cluster::wait_for_interest(std::string_view subject,
                                    caf::timespan timeout) {
  if (validate_subject(subject))
    return false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock<std::mutex> guard{core_->wait_mtx};
  for (;;) {
    auto version = core_->interest_version;
    guard.unlock();
    if (core_->interested(subject))
      return true;
    guard.lock();
    if (!core_->wait_cv.wait_until(
          guard, deadline, [&] { return core_->interest_version != version; }))
      return false;
  }
}

caf::error bus_cluster::flush(caf::timespan timeout) {
  caf::scoped_actor self{core_->host.system()};
  caf::error result;
  self->request(router_, timeout, bus_drain_atom::value)
    .receive([] {},
             [&](caf::error& err) {
               result = err == caf::sec::request_timeout
                          ? caf::make_error(troupe::errc::timeout,
                                            "messages still on their way to "
                                            "peers after the flush timeout")
                          : std::move(err);
             });
  return result;
}

std::vector<cluster_peer> bus_cluster::peers() const {
  std::vector<cluster_peer> out;
  std::shared_lock<std::shared_mutex> guard{core_->table_mtx};
  for (auto& [lid, l] : core_->links)
    if (l->up)
      out.push_back({l->name, l->node, l->address, l->keys.size()});
  return out;
}

cluster_stats bus_cluster::stats() const {
  cluster_stats out;
  out.sent = core_->sent.load();
  out.received = core_->received.load();
  out.dropped = core_->dropped.load();
  out.link_losses = core_->losses.load();
  out.lost = core_->lost.load();
  std::shared_lock<std::shared_mutex> guard{core_->table_mtx};
  for (auto& [lid, l] : core_->links)
    out.peers += l->up ? 1 : 0;
  return out;
}

} // namespace troupe::bus
