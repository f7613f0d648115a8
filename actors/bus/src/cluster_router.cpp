// The router actor of a bus cluster (see cluster_router.hpp): interest
// exchange with split horizon, links, batches out and in.

#include "cluster_router.hpp"

#include <algorithm>
#include <mutex>
#include <shared_mutex>
#include <string_view>

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>
#include <caf/unit.hpp>
#include <spdlog/spdlog.h>

#include "troupe/bus/bus.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/runtime/random_id.hpp"

#include "wire.hpp"

namespace troupe::bus::detail {

namespace {

// Between routers: `(bus_hello, version, name, id, advertised)` answered by
// the same tuple (or an error: refused); `(bus_interest, added, pattern,
// group)`; `(bus_batch, bytes)` answered by `bus_ack`.
using bus_hello_atom = caf::atom_constant<caf::atom("bushello")>;
using bus_interest_atom = caf::atom_constant<caf::atom("businter")>;
using bus_batch_atom = caf::atom_constant<caf::atom("busbatch")>;
using bus_ack_atom = caf::atom_constant<caf::atom("busack")>;

// A message that has crossed this many links is dropped: links form a tree,
// so only a loop made by a race between two connects could get there.
constexpr uint8_t max_hops = 32;

std::vector<std::string> flatten(const std::vector<interest_key>& xs) {
  std::vector<std::string> out;
  out.reserve(xs.size() * 2);
  for (auto& [pattern, group] : xs) {
    out.push_back(pattern);
    out.push_back(group);
  }
  return out;
}

std::vector<interest_key> advertised_to(router_state& st, uint64_t link) {
  std::vector<interest_key> out;
  for (auto& [key, srcs] : st.sources)
    if (std::any_of(srcs.begin(), srcs.end(),
                    [link](uint64_t s) { return s != link; }))
      out.push_back(key);
  return out;
}

/// Adds (or removes) `src` as a source of `key` and tells each link whose
/// view changed.
void set_source(router_ptr self, const interest_key& key, uint64_t src,
                bool add) {
  auto& st = self->state;
  auto& srcs = st.sources[key];
  auto before = srcs;
  auto i = std::find(srcs.begin(), srcs.end(), src);
  if (add == (i != srcs.end()))
    return;
  if (add)
    srcs.push_back(src);
  else
    srcs.erase(i);
  auto sees = [](const std::vector<uint64_t>& xs, uint64_t l) {
    return std::any_of(xs.begin(), xs.end(),
                       [l](uint64_t s) { return s != l; });
  };
  for (auto& [lid, l] : st.links) {
    bool was = sees(before, lid);
    bool is = sees(srcs, lid);
    if (was != is)
      self->send(l->remote, bus_interest_atom::value, is, key.first,
                 key.second);
  }
  if (srcs.empty())
    st.sources.erase(key);
}

/// Counts a subscription interest of this node's bus in (`added`) or out.
void set_local(router_ptr self, const std::string& pattern,
               const std::string& group, bool added) {
  auto& st = self->state;
  if (added ? st.local_interest.add(pattern, group)
            : st.local_interest.remove(pattern, group))
    set_source(self, {pattern, group}, 0, added);
}

/// Records that link `l` advertises `key` (or no longer does).
void set_remote(router_ptr self, const link_ptr& l, const interest_key& key,
                bool add) {
  if (!key.first.empty()) {
    std::unique_lock<std::shared_mutex> guard{self->state.core->table_mtx};
    // Each pair once: a repeated addition or a removal of what is absent
    // changes nothing.
    if (add == l->keys.contains(key.first, key.second))
      return;
    if (add)
      l->keys.add(key.first, key.second);
    else
      l->keys.remove(key.first, key.second);
  }
  set_source(self, key, l->id, add);
  if (!key.first.empty())
    self->state.core->notify_interest();
}

bool all_drained(router_state& st) {
  for (auto& [lid, l] : st.links) {
    if (l->inflight > 0)
      return false;
    std::lock_guard<std::mutex> guard{l->mtx};
    if (!l->buf.empty())
      return false;
  }
  return true;
}

bool any_over_limit(router_state& st) {
  for (auto& [lid, l] : st.links) {
    std::lock_guard<std::mutex> guard{l->mtx};
    if (l->buf.size() >= st.core->opts.link_buffer)
      return true;
  }
  return false;
}

void check_waiters(router_ptr self) {
  auto& st = self->state;
  if (!st.held.empty() && !any_over_limit(st)) {
    for (auto& rp : st.held)
      rp.deliver(bus_ack_atom::value);
    st.held.clear();
  }
  if (!st.drains.empty() && all_drained(st)) {
    for (auto& rp : st.drains)
      rp.deliver(caf::unit);
    st.drains.clear();
  }
}

void send_batches(router_ptr self, const link_ptr& l) {
  auto& st = self->state;
  while (l->inflight < st.core->opts.window) {
    std::string out;
    size_t n = 0;
    {
      std::lock_guard<std::mutex> guard{l->mtx};
      if (l->dead || l->buf.empty()) {
        l->flush_pending = false;
        break;
      }
      out.swap(l->buf);
      n = l->buffered;
      l->buffered = 0;
      l->stalled = false;
      l->buf.reserve(std::min(out.size(), st.core->opts.link_buffer));
    }
    l->room.notify_all();
    ++l->inflight;
    auto lid = l->id;
    self
      ->request(l->remote, caf::infinite, bus_batch_atom::value, std::move(out))
      .then(
        [=](bus_ack_atom) {
          auto& s = self->state;
          s.core->sent.fetch_add(n, std::memory_order_relaxed);
          auto i = s.links.find(lid);
          if (i == s.links.end())
            return;
          --i->second->inflight;
          send_batches(self, i->second);
          check_waiters(self);
        },
        [=](caf::error& err) {
          auto& s = self->state;
          s.core->dropped.fetch_add(n, std::memory_order_relaxed);
          auto i = s.links.find(lid);
          if (i == s.links.end())
            return;
          troupe::log(self->system())
            .warn("bus: a batch of {} messages to '{}' failed: {}", n,
                  i->second->name, error_text(err));
          --i->second->inflight;
          send_batches(self, i->second);
          check_waiters(self);
        });
  }
  check_waiters(self);
}

/// Removes link `lid` and what it advertised; a dialled link is redialled.
void drop_link(router_ptr self, uint64_t lid, const std::string& why,
               bool clean = false, bool transient = true) {
  auto& st = self->state;
  auto i = st.links.find(lid);
  if (i == st.links.end())
    return;
  auto l = i->second;
  if (l->up && clean) {
    troupe::log(self->system()).info("bus: peer '{}' left", l->name);
  } else if (l->up) {
    st.core->losses.fetch_add(1, std::memory_order_relaxed);
    troupe::log(self->system())
      .warn("bus: lost peer '{}'{}: {}", l->name,
            l->address.empty() ? "" : " at " + l->address, why);
  }
  {
    std::lock_guard<std::mutex> guard{l->mtx};
    l->dead = true;
    st.core->dropped.fetch_add(l->buffered, std::memory_order_relaxed);
    l->buffered = 0;
    l->buf.clear();
    l->buf.shrink_to_fit();
  }
  l->room.notify_all();
  // What it advertised: its interest and the nodes behind it.
  std::vector<interest_key> advertised;
  for (auto& [key, srcs] : st.sources)
    if (std::find(srcs.begin(), srcs.end(), lid) != srcs.end())
      advertised.push_back(key);
  st.links.erase(i);
  st.by_remote.erase(l->remote.address());
  {
    std::unique_lock<std::shared_mutex> guard{st.core->table_mtx};
    st.core->links.erase(lid);
  }
  for (auto& key : advertised)
    set_source(self, key, lid, false);
  st.core->notify_interest();
  for (auto& [did, d] : st.dials)
    if (d.link == lid) {
      d.link = 0;
      if (l->up)
        self->send(d.dialer, bus_lost_atom::value, why);
      else
        self->send(d.dialer, bus_unlinked_atom::value, why, transient);
    }
  check_waiters(self);
}

link_ptr add_link(router_ptr self, caf::actor remote, std::string address) {
  auto& st = self->state;
  auto l = std::make_shared<cluster_link>();
  l->id = st.next_link++;
  l->remote = std::move(remote);
  l->address = std::move(address);
  st.links.emplace(l->id, l);
  st.by_remote.emplace(l->remote.address(), l->id);
  {
    std::unique_lock<std::shared_mutex> guard{st.core->table_mtx};
    st.core->links.emplace(l->id, l);
  }
  self->monitor(l->remote);
  return l;
}

/// Checks a peer's hello; returns why the link is refused, or empty.
std::string refusal(router_state& st, uint32_t version, uint64_t peer,
                    const std::vector<std::string>& adv) {
  if (version != protocol_version)
    return "it speaks bus protocol " + std::to_string(version) + ", we speak "
           + std::to_string(protocol_version);
  if (adv.size() % 2 != 0)
    return "its interest list is malformed";
  if (peer == st.core->id)
    return "it is this node itself";
  for (size_t i = 0; i < adv.size(); i += 2)
    if (adv[i].empty() && st.sources.count({adv[i], adv[i + 1]}) > 0)
      return "node " + adv[i + 1]
             + " is reachable both through it and through an existing link "
               "(bus links must form a tree, without loops)";
  return {};
}

/// Takes a peer's advertised interest (flattened pairs).
void take_interest(router_ptr self, const link_ptr& l,
                   const std::vector<std::string>& adv) {
  for (size_t i = 0; i + 1 < adv.size(); i += 2) {
    if (!adv[i].empty()) {
      if (auto err = validate_pattern(adv[i])) {
        troupe::log(self->system())
          .warn("bus: peer '{}' advertised an invalid pattern: {}", l->name,
                error_text(err));
        continue;
      }
    }
    set_remote(self, l, {adv[i], adv[i + 1]}, true);
  }
}

/// Delivers and forwards the records of a batch from link `from`; returns
/// whether a buffer went over its limit.
bool take_batch(router_ptr self, uint64_t from, const std::string& data) {
  auto& st = self->state;
  auto& core = *st.core;
  thread_local wire_record r;
  thread_local std::vector<std::string_view> here;
  thread_local std::vector<std::string_view> rest;
  inject_options opts;
  bool over = false;
  size_t pos = 0;
  uint64_t n = 0;
  while (pos < data.size()) {
    if (!decode_record(data, pos, r)) {
      troupe::log(self->system())
        .error("bus: malformed batch from link {} at byte {} of {}; "
               "dropping the rest of it",
               from, pos, data.size());
      break;
    }
    ++n;
    if (r.hops >= max_hops) {
      core.dropped.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    // Local delivery: plain subscribers, and the listed groups that have a
    // member here; the others go on.
    opts.plain = r.plain;
    opts.queue_groups.clear();
    rest.clear();
    if (!r.groups.empty()) {
      here.clear();
      st.local_interest.match(r.msg.subject, here);
      for (auto g : r.groups) {
        if (std::find(here.begin(), here.end(), g) != here.end())
          opts.queue_groups.emplace_back(g);
        else
          rest.push_back(g);
      }
    }
    if (opts.plain || !opts.queue_groups.empty())
      if (auto err = st.local->inject(r.msg, opts))
        troupe::log(self->system())
          .warn("bus: dropped a message from link {}: {}", from,
                error_text(err));
    if (r.plain || !rest.empty())
      core.forward(r.msg, from, r.plain, rest, static_cast<uint8_t>(r.hops + 1),
                   false, false, &over);
  }
  core.received.fetch_add(n, std::memory_order_relaxed);
  return over;
}

} // namespace

caf::behavior router(router_ptr self, core_ptr core, bus* local) {
  install_log_handlers(self);
  auto& st = self->state;
  st.core = std::move(core);
  st.local = local;
  set_source(self, {std::string{}, to_hex(st.core->id)}, 0, true);
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& s = self->state;
    auto i = s.by_remote.find(msg.source);
    if (i != s.by_remote.end())
      drop_link(self, i->second, error_text(msg.reason),
                msg.reason == caf::exit_reason::user_shutdown
                  || msg.reason == caf::exit_reason::normal);
  });
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& s = self->state;
    for (auto& [lid, l] : s.links) {
      std::lock_guard<std::mutex> guard{l->mtx};
      l->dead = true;
      l->room.notify_all();
    }
    for (auto& [did, d] : s.dials)
      self->send_exit(d.dialer, msg.reason);
    for (auto& rp : s.drains)
      rp.deliver(
        caf::make_error(troupe::errc::closed, "the bus cluster has ended"));
    s.drains.clear();
    self->quit(msg.reason);
  });
  return {
    // -- from this node --
    [=](bus_local_atom, bool added, const std::string& pattern,
        const std::string& group) { set_local(self, pattern, group, added); },
    [=](bus_flush_atom, uint64_t lid) {
      auto& s = self->state;
      if (auto i = s.links.find(lid); i != s.links.end())
        send_batches(self, i->second);
    },
    [=](bus_drain_atom) -> caf::result<caf::unit_t> {
      auto& s = self->state;
      if (all_drained(s))
        return caf::unit;
      s.drains.push_back(self->make_response_promise());
      return s.drains.back();
    },
    // A dialer introduces itself (its first message).
    [=](bus_dialer_atom, uint64_t did, const std::string& address) {
      auto& s = self->state;
      s.dials[did]
        = {caf::actor_cast<caf::actor>(self->current_sender()), address, 0};
    },
    // A dialer reached a peer's router: say hello.
    [=](bus_dialed_atom, uint64_t did, caf::actor remote,
        const std::string& address) {
      auto& s = self->state;
      auto di = s.dials.find(did);
      if (di == s.dials.end())
        return;
      if (remote == caf::actor_cast<caf::actor>(self)) {
        self->send(di->second.dialer, bus_unlinked_atom::value,
                   std::string{"refused: it is this node itself"}, false);
        return;
      }
      auto l = add_link(self, remote, address);
      di->second.link = l->id;
      auto lid = l->id;
      self
        ->request(remote, s.core->opts.reconnect.connect_timeout,
                  bus_hello_atom::value, protocol_version, s.core->host.name(),
                  s.core->id, flatten(advertised_to(s, lid)))
        .then(
          [=](bus_hello_atom, uint32_t version, const std::string& name,
              uint64_t peer, const std::vector<std::string>& adv) {
            auto& s2 = self->state;
            auto i = s2.links.find(lid);
            if (i == s2.links.end())
              return;
            auto l2 = i->second;
            if (auto why = refusal(s2, version, peer, adv); !why.empty()) {
              drop_link(self, lid, "refused: " + why, false, false);
              return;
            }
            l2->name = name;
            l2->node = peer;
            {
              std::unique_lock<std::shared_mutex> guard{s2.core->table_mtx};
              l2->up = true;
            }
            take_interest(self, l2, adv);
            troupe::log(self->system())
              .info("bus: linked to '{}' at {}", name, l2->address);
            auto dj = s2.dials.find(did);
            if (dj != s2.dials.end())
              self->send(dj->second.dialer, bus_linked_atom::value);
            std::lock_guard<std::mutex> guard{s2.core->wait_mtx};
            s2.core->dials[did].up = true;
            s2.core->wait_cv.notify_all();
          },
          [=](caf::error& err) {
            auto why = err == caf::sec::unexpected_message
                         ? std::string{"it is not a troupe bus node"}
                         : error_text(err);
            // The connection went down or the hello timed out: "not now".
            // Anything else is the peer's answer: "no".
            auto lost = err.category() == caf::atom("exit")
                        || err == caf::sec::request_timeout
                        || err == caf::sec::connection_timeout;
            drop_link(self, lid, why, false, lost);
          });
    },
    // -- from peers --
    [=](bus_hello_atom, uint32_t version, const std::string& name,
        uint64_t peer, const std::vector<std::string>& adv)
      -> caf::result<bus_hello_atom, uint32_t, std::string, uint64_t,
                     std::vector<std::string>> {
      auto& s = self->state;
      auto remote = caf::actor_cast<caf::actor>(self->current_sender());
      if (!remote)
        return caf::make_error(troupe::errc::connect_failed, "anonymous hello");
      if (auto why = refusal(s, version, peer, adv); !why.empty()) {
        troupe::log(self->system())
          .warn("bus: refused a link from '{}': {}", name, why);
        return caf::make_error(troupe::errc::connect_failed,
                               "'" + s.core->host.name()
                                 + "' refused the link: " + why);
      }
      auto l = add_link(self, remote, {});
      l->name = name;
      l->node = peer;
      auto mine = flatten(advertised_to(s, l->id));
      {
        std::unique_lock<std::shared_mutex> guard{s.core->table_mtx};
        l->up = true;
      }
      take_interest(self, l, adv);
      troupe::log(self->system()).info("bus: peer '{}' linked", name);
      return {bus_hello_atom::value, protocol_version, s.core->host.name(),
              s.core->id, std::move(mine)};
    },
    [=](bus_interest_atom, bool added, const std::string& pattern,
        const std::string& group) {
      auto& s = self->state;
      auto i = s.by_remote.find(
        caf::actor_cast<caf::actor_addr>(self->current_sender()));
      if (i == s.by_remote.end())
        return;
      auto l = s.links[i->second];
      if (!pattern.empty())
        if (auto err = validate_pattern(pattern)) {
          troupe::log(self->system())
            .warn("bus: peer '{}' advertised an invalid pattern: {}", l->name,
                  error_text(err));
          return;
        }
      set_remote(self, l, {pattern, group}, added);
    },
    [=](bus_batch_atom, const std::string& data) -> caf::result<bus_ack_atom> {
      auto& s = self->state;
      auto i = s.by_remote.find(
        caf::actor_cast<caf::actor_addr>(self->current_sender()));
      uint64_t from = i == s.by_remote.end() ? 0 : i->second;
      if (from == 0) // not (or no longer) linked: nobody to forward for
        return bus_ack_atom::value;
      if (take_batch(self, from, data)) {
        s.held.push_back(self->make_response_promise());
        return s.held.back();
      }
      return bus_ack_atom::value;
    },
  };
}

} // namespace troupe::bus::detail
