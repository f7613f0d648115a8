// One connect attempt to a peer, and the delays between attempts
// (troupe/runtime/dialer.hpp).

#include "troupe/runtime/dialer.hpp"

#include <algorithm>
#include <memory>
#include <set>
#include <utility>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/scribe.hpp>
#include <caf/node_id.hpp>
#include <caf/sec.hpp>

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/net.hpp"

#include "gate.hpp"

namespace troupe {

namespace {

using retry_atom = caf::atom_constant<caf::atom("dialretry")>;
using relay_ok_atom = caf::atom_constant<caf::atom("dialrelok")>;
using relay_failed_atom = caf::atom_constant<caf::atom("dialrelerr")>;
using clock_type = std::chrono::steady_clock;

bool is(const caf::error& err, caf::sec code) {
  return err.category() == caf::atom("system")
         && err.code() == static_cast<uint8_t>(code);
}

// Hands a connection to CAF's BASP broker and reports its answer to `dialer`
// as `(relay_ok_atom, strong_actor_ptr)` or `(relay_failed_atom, error)`.
// BASP keeps the requester of a connect (in the connection's context) for as
// long as the connection lives; a detached actor kept that way blocks the
// actor system's shutdown (await_detached_threads; seen in 1 of ~40 `troupe
// pub` processes under load). This relay is a scheduled actor: kept alive, it
// holds no thread.
caf::behavior connect_relay(caf::event_based_actor* self, caf::actor basp,
                            caf::io::scribe_ptr scrb, uint16_t port,
                            caf::timespan timeout, caf::actor dialer) {
  // Holds the dialer (nothing else does, and CAF ends an unreferenced actor)
  // until the answer is out, then lets go: this relay may outlive it. Ends
  // with the middleman, whose broker may never answer then.
  self->link_to(self->system().middleman().actor_handle());
  auto to = std::make_shared<caf::actor>(std::move(dialer));
  self->request(basp, timeout, caf::connect_atom::value, std::move(scrb), port)
    .then(
      [=](const caf::node_id&, caf::strong_actor_ptr& ptr,
          const std::set<std::string>&) {
        self->send(*to, relay_ok_atom::value, std::move(ptr));
        *to = nullptr;
        self->quit();
      },
      [=](caf::error& err) {
        self->send(*to, relay_failed_atom::value, std::move(err));
        *to = nullptr;
        self->quit();
      });
  return {[](caf::unit_t) {}};
}

// Runs one attempt (see `dial`), then ends. A peer that answers "busy" is
// asked again with growing pauses until `timeout` runs out.
caf::behavior dial_attempt(caf::event_based_actor* self, const net_config* cfg,
                           std::string host, uint16_t port,
                           caf::timespan timeout, caf::actor reply_to) {
  // Ends with the middleman: an attempt still running when the node stops
  // would hold up its shutdown (CAF waits for every detached actor).
  self->link_to(self->system().middleman().actor_handle());
  auto where = format_address(host, port);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  auto deadline = clock_type::now() + timeout;
  auto fail = [=](caf::error why) {
    self->send(reply_to, dial_failed_atom::value, std::move(why));
    self->quit();
  };
  auto failed = [=](std::string why, errc code = errc::connect_failed) {
    fail(caf::make_error(code, where + ": " + std::move(why)));
  };
  auto g = detail::gate_of(self->system(), *cfg, host);
  if (!g) {
    fail(std::move(g.error()));
    return {};
  }
  if (auto err
      = detail::check_plain_allowed(*cfg, host, "connect to " + where)) {
    fail(std::move(err));
    return {};
  }
  auto gate = *g;
  reconnect_options busy_pauses;
  busy_pauses.initial_backoff = std::chrono::milliseconds{20};
  busy_pauses.max_backoff = std::chrono::milliseconds{500};
  auto pause = std::make_shared<backoff>(busy_pauses);
  // Returns whether the attempt is over (the actor quit).
  auto attempt = [=]() -> bool {
    auto scrb = gate->connect(host, port, ms, deadline);
    if (!scrb) {
      auto delay = pause->next();
      if (scrb.error() == errc::busy && clock_type::now() + delay < deadline) {
        self->delayed_send(self, delay, retry_atom::value);
        return false;
      }
      if (scrb.error() == errc::busy)
        fail(caf::make_error(errc::busy, error_text(scrb.error())
                                           + "; gave up after "
                                           + std::to_string(ms.count())
                                           + " ms (--connect-timeout)"));
      else
        fail(std::move(scrb.error()));
      return true;
    }
    self->spawn(connect_relay, gate->basp(), std::move(*scrb), port,
                deadline - clock_type::now(),
                caf::actor_cast<caf::actor>(self));
    return false;
  };
  if (attempt())
    return {};
  return {
    [=](retry_atom) { attempt(); },
    [=](relay_ok_atom, caf::strong_actor_ptr& ptr) {
      if (ptr)
        self->send(reply_to, dial_ok_atom::value,
                   caf::actor_cast<caf::actor>(ptr));
      else
        self->send(reply_to, dial_empty_atom::value);
      self->quit();
    },
    [=](relay_failed_atom, caf::error& err) {
      auto why = gate->take_refusal(host, port);
      // CAF's middleman drops a connection whose handshake is not through at
      // its next heartbeat tick (its connection-timeout counts from the epoch
      // for a connection it opened): try again while the connect timeout
      // lasts.
      auto delay = pause->next();
      if (!why && is(err, caf::sec::connection_timeout)
          && clock_type::now() + delay < deadline) {
        self->delayed_send(self, delay, retry_atom::value);
        return;
      }
      if (why)
        fail(std::move(why));
      else if (is(err, caf::sec::request_timeout))
        failed("no troupe handshake within " + std::to_string(ms.count())
               + " ms (--connect-timeout)");
      else if (is(err, caf::sec::incompatible_application_ids))
        failed("not a troupe-v1 node (application identifiers differ)",
               errc::refused);
      else if (is(err, caf::sec::disconnect_during_handshake))
        failed("the peer closed the connection during the handshake");
      else
        failed(self->system().render(err));
    },
  };
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
