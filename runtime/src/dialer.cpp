// One connect attempt to a peer, and the delays between attempts
// (troupe/runtime/dialer.hpp).

#include "troupe/runtime/dialer.hpp"

#include <algorithm>
#include <set>
#include <utility>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/node_id.hpp>

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/net.hpp"
#include "troupe/runtime/tcp.hpp"

namespace troupe {

namespace {

// Runs one attempt (see `dial`), then ends.
caf::behavior dial_attempt(caf::event_based_actor* self, const net_config* cfg,
                           std::string host, uint16_t port,
                           caf::timespan timeout, caf::actor reply_to) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  if (!cfg->secured()) {
    self->send(
      reply_to, dial_failed_atom::value,
      detail::not_secured("connect to " + host + ":" + std::to_string(port)));
    self->quit();
    return {};
  }
  if (auto why = probe_tcp(host, port, ms)) {
    self->send(
      reply_to, dial_failed_atom::value,
      caf::make_error(errc::connect_failed, "cannot reach " + host + ":"
                                              + std::to_string(port) + ": "
                                              + error_text(why)));
    self->quit();
    return {};
  }
  auto mm = connector(self->system(), *cfg);
  self->request(mm, timeout, caf::connect_atom::value, host, port)
    .then(
      [=](const caf::node_id&, caf::strong_actor_ptr& ptr,
          const std::set<std::string>&) {
        if (ptr)
          self->send(reply_to, dial_ok_atom::value,
                     caf::actor_cast<caf::actor>(ptr));
        else
          self->send(reply_to, dial_empty_atom::value);
        self->quit();
      },
      [=](caf::error& err) {
        self->send(
          reply_to, dial_failed_atom::value,
          explain_connect_error(self->system(), err, host, port, *cfg, ms));
        self->quit();
      });
  // Keeps the actor waiting for the middleman's answer.
  return {[](caf::unit_t) {}};
}

} // namespace

caf::timespan backoff::next() noexcept {
  auto delay = current_;
  current_ = std::min(current_ * 2, max_);
  return delay;
}

void dial(caf::actor_system& sys, const net_config& cfg, std::string host,
          uint16_t port, caf::timespan timeout, caf::actor reply_to) {
  sys.spawn<caf::detached>(dial_attempt, &cfg, std::move(host), port, timeout,
                           std::move(reply_to));
}

} // namespace troupe
