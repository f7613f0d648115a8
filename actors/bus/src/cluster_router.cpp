// The router actor of a bus cluster (see cluster_router.hpp): interest
// exchange with split horizon, links, batches out and in.

#include "cluster_router.hpp"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>

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
// group)`; `(bus_batch, link, destined, bytes)` answered by `bus_ack`:
// `link` is the sender's id of the link, `destined` the number of records
// it routed over it so far, this batch's included (the receiver counts the
// gap as lost); `(bus_tally, node, name, link, destined, why)`: the first
// message on a link to a peer whose earlier link (`link`) went down with
// records unacknowledged: how many records it had routed over that one;
// `(bus_nack, reply_to, why, maybe_delivered)`: the request with that reply
// subject, which came over this link, is lost (every link it went on from
// here went down, or nothing here matched it).
using bus_hello_atom = caf::atom_constant<caf::atom("bushello")>;
using bus_interest_atom = caf::atom_constant<caf::atom("businter")>;
using bus_batch_atom = caf::atom_constant<caf::atom("busbatch")>;
using bus_ack_atom = caf::atom_constant<caf::atom("busack")>;
using bus_tally_atom = caf::atom_constant<caf::atom("bustally")>;
using bus_nack_atom = caf::atom_constant<caf::atom("busnack")>;

// Bounds on the bookkeeping of losses: requests relayed (kept until a reply
// passes, or this long), and tallies of lost links kept for a peer that may
// come back.
constexpr size_t max_relayed = 65536;
constexpr auto relayed_ttl = std::chrono::minutes(10);
constexpr size_t max_tallies = 1024;

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
    uint64_t destined = 0;
    {
      std::lock_guard<std::mutex> guard{l->mtx};
      // An empty batch, too, if publishers dropped records for the link
      // since the last one: it tells the peer they are lost.
      if (l->dead || (l->buf.empty() && l->destined == l->told)) {
        l->flush_pending = false;
        break;
      }
      out.swap(l->buf);
      n = l->buffered;
      destined = l->destined;
      l->buffered = 0;
      l->stalled = false;
      l->buf.reserve(std::min(out.size(), st.core->opts.link_buffer));
    }
    l->room.notify_all();
    l->told = destined;
    ++l->inflight;
    auto lid = l->id;
    self
      ->request(l->remote, caf::infinite, bus_batch_atom::value, lid, destined,
                std::move(out))
      .then(
        [=](bus_ack_atom) {
          auto& s = self->state;
          s.core->sent.fetch_add(n, std::memory_order_relaxed);
          auto i = s.links.find(lid);
          if (i == s.links.end())
            return;
          --i->second->inflight;
          i->second->acked += n;
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

/// Names link `l` in messages: "peer 'NAME' at ADDRESS".
std::string peer_text(const cluster_link& l) {
  return "peer '" + l.name + "'"
         + (l.address.empty() ? "" : " at " + l.address);
}

/// Peer `l` dropped `n` records it had routed to this node, for `why`.
void report_loss(router_ptr self, const std::string& name, uint64_t n,
                 const std::string& why) {
  auto& core = *self->state.core;
  core.lost.fetch_add(n, std::memory_order_relaxed);
  troupe::log(self->system())
    .warn("bus: peer '{}' dropped {} messages for this node: {}", name, n, why);
  if (core.opts.on_loss)
    core.opts.on_loss(cluster_loss{name, n, why});
}

/// Erases the oldest entries of `xs` (by `seq`) until it has room.
template <class Map>
void make_room(Map& xs) {
  while (xs.size() >= max_tallies) {
    auto oldest = xs.begin();
    for (auto i = xs.begin(); i != xs.end(); ++i)
      if (i->second.seq < oldest->second.seq)
        oldest = i;
    xs.erase(oldest);
  }
}

/// Tells link `from` (if it is still there) that its request with reply
/// subject `reply_to` is lost.
void nack(router_ptr self, uint64_t from, const std::string& reply_to,
          const std::string& why, bool maybe) {
  auto& st = self->state;
  if (auto i = st.links.find(from); i != st.links.end())
    self->send(i->second->remote, bus_nack_atom::value, reply_to, why, maybe);
}

/// Link `lid` lost the relayed request `reply_to` (or, with an empty
/// `reply_to`, every relayed request that went over it).
void relayed_lost(router_ptr self, uint64_t lid, const std::string& reply_to,
                  const std::string& why, bool maybe) {
  auto& st = self->state;
  auto lose = [&](router_state::relayed_request& r) {
    auto j = std::find(r.links.begin(), r.links.end(), lid);
    if (j == r.links.end())
      return false;
    r.links.erase(j);
    r.maybe = r.maybe || maybe;
    r.why = r.why.empty() ? why : r.why + "; " + why;
    return r.links.empty();
  };
  if (!reply_to.empty()) {
    auto i = st.relayed.find(reply_to);
    if (i != st.relayed.end() && lose(i->second)) {
      nack(self, i->second.from, reply_to, i->second.why, i->second.maybe);
      st.relayed.erase(i);
    }
    return;
  }
  for (auto i = st.relayed.begin(); i != st.relayed.end();) {
    if (i->second.from == lid) {
      i = st.relayed.erase(i); // nobody left to tell
    } else if (lose(i->second)) {
      nack(self, i->second.from, i->first, i->second.why, i->second.maybe);
      i = st.relayed.erase(i);
    } else {
      ++i;
    }
  }
}

/// Remembers a request from link `from`, forwarded over `links`.
void relay(router_ptr self, uint64_t from, std::string_view reply_to,
           std::vector<uint64_t> links) {
  auto& st = self->state;
  auto now = std::chrono::steady_clock::now();
  while (!st.relayed_order.empty()) {
    auto& [key, seq] = st.relayed_order.front().second;
    auto i = st.relayed.find(key);
    auto live = i != st.relayed.end() && i->second.seq == seq;
    if (live && st.relayed.size() < max_relayed
        && now - st.relayed_order.front().first <= relayed_ttl)
      break;
    if (live)
      st.relayed.erase(i);
    st.relayed_order.pop_front();
  }
  auto seq = st.next_seq++;
  auto& r = st.relayed[std::string{reply_to}];
  r = {from, std::move(links), false, {}, seq};
  st.relayed_order.emplace_back(now,
                                std::make_pair(std::string{reply_to}, seq));
}

/// Link `l` is up: tells the peer how many records the last link to it
/// that went down had routed to it, if not all of them were acknowledged.
void link_up(router_ptr self, const link_ptr& l) {
  auto& st = self->state;
  auto i = st.owed.find(l->node);
  if (i == st.owed.end())
    return;
  self->send(l->remote, bus_tally_atom::value, st.core->id,
             st.core->host.name(), i->second.link, i->second.destined,
             i->second.why);
  st.owed.erase(i);
}

/// Removes link `lid` and what it advertised; a dialled link is redialled.
void drop_link(router_ptr self, uint64_t lid, const std::string& why,
               bool clean = false, bool transient = true) {
  auto& st = self->state;
  auto i = st.links.find(lid);
  if (i == st.links.end())
    return;
  auto l = i->second;
  uint64_t unacked = 0;
  {
    std::lock_guard<std::mutex> guard{l->mtx};
    unacked = l->destined - l->acked;
  }
  if (l->up && clean) {
    troupe::log(self->system()).info("bus: peer '{}' left", l->name);
  } else if (l->up) {
    st.core->losses.fetch_add(1, std::memory_order_relaxed);
    troupe::log(self->system())
      .warn("bus: lost peer '{}'{}: {}{}", l->name,
            l->address.empty() ? "" : " at " + l->address, why,
            unacked == 0 ? std::string{}
                         : "; " + std::to_string(unacked)
                             + " messages for it were not acknowledged "
                               "(the peer hears how many once it is back)");
  }
  std::unordered_map<std::string, std::weak_ptr<request_tracker>> requests;
  uint64_t destined = 0;
  {
    std::lock_guard<std::mutex> guard{l->mtx};
    l->dead = true;
    st.core->dropped.fetch_add(l->buffered, std::memory_order_relaxed);
    l->buffered = 0;
    l->buf.clear();
    l->buf.shrink_to_fit();
    requests.swap(l->requests);
    destined = l->destined;
  }
  l->room.notify_all();
  // The requests that went over it fail now, unless they went elsewhere
  // too; so do those this node relayed over it alone.
  auto lost_link = "lost the link to " + peer_text(*l) + ": " + why;
  for (auto& [reply_to, weak] : requests)
    if (auto t = weak.lock())
      t->lost(lost_link, true);
  relayed_lost(self, lid, {}, lost_link, true);
  // What it owes the peer, and what the peer may tell us, once it is back.
  if (l->up && l->node != 0) {
    if (destined > l->acked) {
      make_room(st.owed);
      st.owed[l->node] = {lid, destined,
                          "its link to this node was lost with them on their "
                          "way ("
                            + why + ")",
                          st.next_seq++};
    }
    if (l->peer_link != 0) {
      make_room(st.closed_in);
      st.closed_in[l->node]
        = {l->peer_link, l->received, l->reported, st.next_seq++};
    }
  }
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
/// whether a buffer went over its limit, and sets `count` to the number of
/// records in it.
bool take_batch(router_ptr self, uint64_t from, const std::string& data,
                uint64_t& count) {
  auto& st = self->state;
  auto& core = *st.core;
  thread_local wire_record r;
  thread_local std::vector<std::string_view> here;
  thread_local std::vector<std::string_view> rest;
  thread_local std::vector<uint64_t> to;
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
    // A reply on its way back: the request it answers is done.
    if (!st.relayed.empty())
      if (auto i = st.relayed.find(r.msg.subject); i != st.relayed.end())
        st.relayed.erase(i);
    // Local delivery: plain subscribers, and the listed groups that have a
    // member here; the others go on.
    opts.plain = r.plain;
    opts.queue_groups.clear();
    rest.clear();
    auto request = !r.msg.reply_to.empty();
    auto local = false;
    if (!r.groups.empty() || request) {
      here.clear();
      st.local_interest.match(r.msg.subject, here);
      local = r.plain
              && std::find(here.begin(), here.end(), std::string_view{})
                   != here.end();
      for (auto g : r.groups) {
        if (std::find(here.begin(), here.end(), g) != here.end())
          opts.queue_groups.emplace_back(g);
        else
          rest.push_back(g);
      }
      local = local || !opts.queue_groups.empty();
    }
    if (opts.plain || !opts.queue_groups.empty())
      if (auto err = st.local->inject(r.msg, opts))
        troupe::log(self->system())
          .warn("bus: dropped a message from link {}: {}", from,
                error_text(err));
    to.clear();
    if (r.plain || !rest.empty())
      core.forward(r.msg, from, r.plain, rest, static_cast<uint8_t>(r.hops + 1),
                   false, false, &over, nullptr, request ? &to : nullptr);
    // A request that no local subscriber got: tell its sender at once if it
    // went nowhere, or later if every link it went over is lost.
    if (request && !local) {
      if (to.empty())
        nack(self, from, std::string{r.msg.reply_to},
             "no responder at '" + core.host.name() + "'", false);
      else
        relay(self, from, r.msg.reply_to, to);
    }
  }
  core.received.fetch_add(n, std::memory_order_relaxed);
  count = n;
  return over;
}

// Returns the link of the peer that sent the current message; null if it is
// not (or no longer) linked.
link_ptr sender_link(router_ptr self) {
  auto& s = self->state;
  auto i = s.by_remote.find(
    caf::actor_cast<caf::actor_addr>(self->current_sender()));
  return i == s.by_remote.end() ? nullptr : s.links[i->second];
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
            link_up(self, l2);
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
      link_up(self, l);
      troupe::log(self->system()).info("bus: peer '{}' linked", name);
      return {bus_hello_atom::value, protocol_version, s.core->host.name(),
              s.core->id, std::move(mine)};
    },
    [=](bus_interest_atom, bool added, const std::string& pattern,
        const std::string& group) {
      auto l = sender_link(self);
      if (!l)
        return;
      if (!pattern.empty())
        if (auto err = validate_pattern(pattern)) {
          troupe::log(self->system())
            .warn("bus: peer '{}' advertised an invalid pattern: {}", l->name,
                  error_text(err));
          return;
        }
      set_remote(self, l, {pattern, group}, added);
    },
    [=](bus_batch_atom, uint64_t peer_link, uint64_t destined,
        const std::string& data) -> caf::result<bus_ack_atom> {
      auto& s = self->state;
      auto l = sender_link(self);
      if (!l) // not (or no longer) linked: nobody to forward for
        return bus_ack_atom::value;
      auto from = l->id;
      uint64_t n = 0;
      auto over = take_batch(self, from, data, n);
      // What the peer routed here and dropped before this batch.
      l->peer_link = peer_link;
      l->received += n;
      l->peer_destined = std::max(l->peer_destined, destined);
      if (l->peer_destined > l->received + l->reported) {
        auto gap = l->peer_destined - l->received - l->reported;
        l->reported += gap;
        report_loss(self, l->name, gap,
                    "its buffer for this node stayed full (slow consumer)");
      }
      if (over) {
        s.held.push_back(self->make_response_promise());
        return s.held.back();
      }
      return bus_ack_atom::value;
    },
    [=](bus_tally_atom, uint64_t node, const std::string& name,
        uint64_t peer_link, uint64_t destined, const std::string& why) {
      auto& s = self->state;
      auto l = sender_link(self);
      if (!l)
        return;
      // What arrived over that link: it may not be down here yet.
      uint64_t got = 0;
      bool found = false;
      for (auto& [lid, other] : s.links)
        if (other != l && other->node == node
            && other->peer_link == peer_link) {
          got = other->received + other->reported;
          if (destined > got)
            other->reported += destined - got;
          found = true;
        }
      if (auto j = s.closed_in.find(node); j != s.closed_in.end()) {
        if (!found && j->second.peer_link == peer_link)
          got = j->second.received + j->second.reported;
        s.closed_in.erase(j);
      }
      if (destined > got)
        report_loss(self, name, destined - got, why);
    },
    [=](bus_nack_atom, const std::string& reply_to, const std::string& why,
        bool maybe) {
      auto l = sender_link(self);
      if (!l)
        return;
      std::shared_ptr<request_tracker> t;
      {
        std::lock_guard<std::mutex> guard{l->mtx};
        if (auto j = l->requests.find(reply_to); j != l->requests.end()) {
          t = j->second.lock();
          l->requests.erase(j);
        }
      }
      if (t)
        t->lost(why, maybe);
      else
        relayed_lost(self, l->id, reply_to, why, maybe);
    },
  };
}

} // namespace troupe::bus::detail
