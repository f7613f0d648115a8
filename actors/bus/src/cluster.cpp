// The cross-node part of the bus: a router actor per node that links to the
// routers of other nodes, exchanges subscription interest with them and
// forwards messages in batches (see bus_cluster in bus/cluster.hpp).
//
// Threads: `cluster_core::route` runs on publishers' threads and reads the
// routing table under a shared lock; the router actor (on the scheduler; it
// may wait for a subscription's room in `bus::inject`, as any publisher
// does) owns everything else and
// changes the table under the exclusive lock. Each link has an outbound
// buffer of encoded messages under its own mutex: publishers append, the
// router swaps it out and sends it as one CAF message when fewer than
// `window` batches are unacknowledged.

#include "troupe/bus/cluster.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <shared_mutex>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/after.hpp>
#include <caf/deep_to_string.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/node_id.hpp>
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
#include "troupe/runtime/security.hpp"

namespace troupe::bus {

namespace {

// -- the wire -----------------------------------------------------------------

// Between routers: `(bus_hello, version, name, id, advertised)` answered by
// the same tuple (or an error: refused); `(bus_interest, added, pattern,
// group)`; `(bus_batch, bytes)` answered by `bus_ack`.
using bus_hello_atom = caf::atom_constant<caf::atom("bushello")>;
using bus_interest_atom = caf::atom_constant<caf::atom("businter")>;
using bus_batch_atom = caf::atom_constant<caf::atom("busbatch")>;
using bus_ack_atom = caf::atom_constant<caf::atom("busack")>;
// Within a node: publishers, dialers and the bus tell the router.
using bus_flush_atom = caf::atom_constant<caf::atom("busflush")>;
using bus_local_atom = caf::atom_constant<caf::atom("buslocal")>;
using bus_drain_atom = caf::atom_constant<caf::atom("busdrain")>;
// Between a dialer and the router (see "dialers" below).
using bus_dialer_atom = caf::atom_constant<caf::atom("busdialer")>;
using bus_dialed_atom = caf::atom_constant<caf::atom("busdialed")>;
using bus_linked_atom = caf::atom_constant<caf::atom("buslinked")>;
using bus_unlinked_atom = caf::atom_constant<caf::atom("busunlink")>;
using bus_lost_atom = caf::atom_constant<caf::atom("buslost")>;
using bus_redial_atom = caf::atom_constant<caf::atom("busredial")>;

constexpr uint32_t protocol_version = 1;

// A message that has crossed this many links is dropped: links form a tree,
// so only a loop made by a race between two connects could get there.
constexpr uint8_t max_hops = 32;

// A batch is a sequence of records, each:
//   u32 record size (after this field), u8 hops, u8 flags (1: plain
//   subscribers), u16 groups, u64 type, u32 subject size, u32 reply size,
//   u32 payload size, then the subject, reply, payload, and per group a u16
//   size and the name. Integers are little-endian.
constexpr size_t record_header = 4 + 1 + 1 + 2 + 8 + 4 + 4 + 4;
constexpr uint8_t flag_plain = 1;

template <class T>
void put(std::string& out, T x) {
  char bytes[sizeof(T)];
  for (size_t i = 0; i < sizeof(T); ++i)
    bytes[i] = static_cast<char>((static_cast<uint64_t>(x) >> (8 * i)) & 0xff);
  out.append(bytes, sizeof(T));
}

template <class T>
T get(const char* p) {
  uint64_t x = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    x |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return static_cast<T>(x);
}

template <class Groups>
void encode(std::string& out, const bus_message_view& m, uint8_t hops,
            bool plain, const Groups& groups) {
  size_t size = record_header - 4 + m.subject.size() + m.reply_to.size()
                + m.payload.size();
  for (auto& g : groups)
    size += 2 + g.size();
  put<uint32_t>(out, static_cast<uint32_t>(size));
  put<uint8_t>(out, hops);
  put<uint8_t>(out, plain ? flag_plain : 0);
  put<uint16_t>(out, static_cast<uint16_t>(groups.size()));
  put<uint64_t>(out, m.type);
  put<uint32_t>(out, static_cast<uint32_t>(m.subject.size()));
  put<uint32_t>(out, static_cast<uint32_t>(m.reply_to.size()));
  put<uint32_t>(out, static_cast<uint32_t>(m.payload.size()));
  out.append(m.subject);
  out.append(m.reply_to);
  out.append(m.payload);
  for (auto& g : groups) {
    put<uint16_t>(out, static_cast<uint16_t>(g.size()));
    out.append(g);
  }
}

/// One decoded record; views into the batch.
struct record {
  bus_message_view msg;
  uint8_t hops = 0;
  bool plain = false;
  std::vector<std::string_view> groups;
};

/// Decodes the record at `data[pos]`, advancing `pos`; returns false if the
/// bytes are not a well-formed record.
bool decode(std::string_view data, size_t& pos, record& out) {
  if (data.size() - pos < record_header)
    return false;
  const char* p = data.data() + pos;
  auto size = get<uint32_t>(p);
  if (size < record_header - 4 || data.size() - pos - 4 < size)
    return false;
  out.hops = get<uint8_t>(p + 4);
  out.plain = (get<uint8_t>(p + 5) & flag_plain) != 0;
  auto ngroups = get<uint16_t>(p + 6);
  out.msg.type = get<uint64_t>(p + 8);
  uint64_t ls = get<uint32_t>(p + 16);
  uint64_t lr = get<uint32_t>(p + 20);
  uint64_t lp = get<uint32_t>(p + 24);
  uint64_t left = size - (record_header - 4);
  if (ls + lr + lp > left)
    return false;
  const char* q = p + record_header;
  out.msg.subject = {q, ls};
  out.msg.reply_to = {q + ls, lr};
  out.msg.payload = {q + ls + lr, lp};
  q += ls + lr + lp;
  left -= ls + lr + lp;
  out.groups.clear();
  for (uint16_t i = 0; i < ngroups; ++i) {
    if (left < 2)
      return false;
    auto lg = get<uint16_t>(q);
    if (left - 2 < lg)
      return false;
    out.groups.emplace_back(q + 2, lg);
    q += 2 + lg;
    left -= 2 + lg;
  }
  if (left != 0)
    return false;
  pos += 4 + size;
  return true;
}

// -- interest -----------------------------------------------------------------

/// A (pattern, queue group) pair. An empty pattern marks a node's presence
/// (the group is then its id): nodes are advertised like interest, which is
/// how a connect that would close a loop is recognised.
using interest_key = std::pair<std::string, std::string>;

std::string node_key(uint64_t id) {
  char hex[17];
  for (int i = 15; i >= 0; --i) {
    hex[i] = "0123456789abcdef"[id & 0xf];
    id >>= 4;
  }
  hex[16] = '\0';
  return hex;
}

std::vector<std::string> flatten(const std::vector<interest_key>& xs) {
  std::vector<std::string> out;
  out.reserve(xs.size() * 2);
  for (auto& [pattern, group] : xs) {
    out.push_back(pattern);
    out.push_back(group);
  }
  return out;
}

} // namespace

namespace detail {

/// A peer as publishers see it: what it advertised, and the buffer of
/// messages on their way to it.
struct cluster_link {
  uint64_t id = 0;
  caf::actor remote;
  std::string name;
  uint64_t node = 0;
  std::string address;
  /// Set once its hello arrived: only then does routing consider it.
  bool up = false;

  // -- what it advertised (under the table lock) --
  subject_index index;
  std::unordered_map<uint64_t, const interest_key*> by_id;
  std::map<interest_key, uint64_t> keys;
  uint64_t next_entry = 1;

  // -- outbound (under mtx) --
  std::mutex mtx;
  std::condition_variable room;
  std::string buf;
  size_t buffered = 0;
  bool flush_pending = false;
  bool stalled = false;
  bool dead = false;

  // -- the router's alone --
  uint32_t inflight = 0;
};

/// The state publishers and the router share; also the bus's router hook.
class cluster_core : public bus_router {
public:
  cluster_core(node& hst, const net_config& config, cluster_options options)
      : host(hst), cfg(config), opts(std::move(options)) {
    std::random_device rd;
    id = (uint64_t{rd()} << 32) ^ rd();
    if (id == 0)
      id = 1;
  }

  // -- bus_router -------------------------------------------------------------

  void interest_changed(bool added, const bus_interest& x) override {
    caf::anon_send(router(), bus_local_atom::value, added, x.pattern,
                   x.queue_group);
  }

  size_t route(const bus_message_view& msg,
               const std::vector<std::string_view>& served_groups) override {
    if (closed.load(std::memory_order_relaxed))
      return 0;
    return forward(msg, 0, true, served_groups, 0, true);
  }

  /// Hands `msg` to every link but `from` that wants it: plain subscribers
  /// if `plain`; groups: with `all_groups`, every group not in `groups`
  /// (those were served), else only those in `groups`. Returns the number
  /// of links it went to. `may_wait`: whether a full buffer may make the
  /// caller wait (publishers) or not (the router, which empties them).
  size_t forward(const bus_message_view& msg, uint64_t from, bool plain,
                 const std::vector<std::string_view>& groups, uint8_t hops,
                 bool all_groups, bool may_wait = true,
                 bool* over_limit = nullptr) {
    struct target {
      cluster_link* link;
      bool plain = false;
      std::vector<std::string_view> groups;
    };
    thread_local std::vector<target> targets;
    thread_local std::vector<uint64_t> ids;
    thread_local std::vector<std::pair<std::string_view, size_t>> wanted;
    targets.clear();
    wanted.clear();
    std::shared_lock<std::shared_mutex> guard{table_mtx};
    for (auto& [lid, lp] : links) {
      auto* l = lp.get();
      if (lid == from || !l->up || l->index.empty())
        continue;
      ids.clear();
      l->index.match(msg.subject, ids);
      if (ids.empty())
        continue;
      target t{l, false, {}};
      for (auto eid : ids) {
        auto& group = l->by_id.at(eid)->second;
        if (group.empty()) {
          t.plain = plain;
          continue;
        }
        bool listed
          = std::find(groups.begin(), groups.end(), group) != groups.end();
        if (listed == all_groups)
          continue;
        wanted.emplace_back(group, targets.size());
      }
      targets.push_back(std::move(t));
    }
    if (targets.empty())
      return 0;
    // One link per group: the members' sides take turns.
    if (!wanted.empty()) {
      std::sort(wanted.begin(), wanted.end());
      wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
      for (size_t i = 0; i < wanted.size();) {
        size_t j = i;
        while (j < wanted.size() && wanted[j].first == wanted[i].first)
          ++j;
        auto pick = i + turn.fetch_add(1, std::memory_order_relaxed) % (j - i);
        targets[wanted[pick].second].groups.push_back(wanted[i].first);
        i = j;
      }
    }
    size_t n = 0;
    for (auto& t : targets) {
      if (!t.plain && t.groups.empty())
        continue;
      if (append(*t.link, msg, hops, t.plain, t.groups, may_wait, over_limit))
        ++n;
    }
    return n;
  }

  /// Appends one record to `l`'s buffer; wakes the router if the buffer was
  /// empty. Returns false if the message was dropped.
  bool append(cluster_link& l, const bus_message_view& msg, uint8_t hops,
              bool plain, const std::vector<std::string_view>& groups,
              bool may_wait, bool* over_limit) {
    std::unique_lock<std::mutex> guard{l.mtx};
    if (l.buf.size() >= opts.link_buffer) {
      if (!may_wait) {
        // The router does not drop: it holds back the acknowledgement of
        // the batch this came in, so the sender slows down instead.
        if (over_limit != nullptr)
          *over_limit = true;
      } else if (l.stalled) {
        dropped.fetch_add(1, std::memory_order_relaxed);
        return false;
      } else if (!l.room.wait_for(guard, opts.max_wait, [&] {
                   return l.dead || l.buf.size() < opts.link_buffer;
                 })) {
        l.stalled = true;
        dropped.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
    }
    if (l.dead) {
      dropped.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    encode(l.buf, msg, hops, plain, groups);
    ++l.buffered;
    if (!l.flush_pending) {
      l.flush_pending = true;
      guard.unlock();
      caf::anon_send(router(), bus_flush_atom::value, l.id);
    }
    return true;
  }

  /// Returns whether a link advertises interest matching `subject`.
  bool interested(std::string_view subject) {
    std::shared_lock<std::shared_mutex> guard{table_mtx};
    std::vector<uint64_t> ids;
    for (auto& [lid, l] : links)
      if (l->up) {
        l->index.match(subject, ids);
        if (!ids.empty())
          return true;
      }
    return false;
  }

  void notify_interest() {
    std::lock_guard<std::mutex> guard{wait_mtx};
    ++interest_version;
    wait_cv.notify_all();
  }

  node& host;
  const net_config& cfg;
  cluster_options opts;
  uint64_t id = 0;
  /// The router actor. Weak: the bus keeps this object alive in per-thread
  /// caches, and a strong reference would keep the dead router's thread
  /// waiting, and with it the actor system's shutdown.
  caf::actor_addr router_addr;
  std::atomic<bool> closed{false};

  caf::actor router() const {
    return caf::actor_cast<caf::actor>(router_addr);
  }

  std::atomic<size_t> turn{0};

  std::shared_mutex table_mtx;
  std::map<uint64_t, std::shared_ptr<cluster_link>> links;

  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> losses{0};

  // Waiters of `connect` and `wait_for_interest`.
  std::mutex wait_mtx;
  std::condition_variable wait_cv;
  uint64_t interest_version = 0;
  /// Per dialer: up once, and why its last attempt failed.
  struct dial_status {
    bool up = false;
    uint64_t failures = 0;
    std::string last_error;
  };
  std::map<uint64_t, dial_status> dials;
  uint64_t next_dial = 1;
};

} // namespace detail

namespace {

using detail::cluster_core;
using detail::cluster_link;
using core_ptr = std::shared_ptr<cluster_core>;
using link_ptr = std::shared_ptr<cluster_link>;

// -- the router actor ---------------------------------------------------------

struct router_state {
  core_ptr core;
  bus* local = nullptr;
  /// How many local subscriptions each interest has (the bus reports first
  /// and last, but its initial list may arrive after later changes).
  std::map<interest_key, int> local_count;
  /// Who has each interest: 0 for this node, else a link id. A link is
  /// told of an interest if anyone but itself has it (split horizon).
  std::map<interest_key, std::vector<uint64_t>> sources;
  /// Local interest, for inbound messages' queue groups.
  subject_index local_index;
  std::map<interest_key, uint64_t> local_ids;
  std::unordered_map<uint64_t, const interest_key*> local_by_id;
  uint64_t next_local = 1;
  /// Links by id; ids from 1, never reused.
  std::map<uint64_t, link_ptr> links;
  std::map<caf::actor_addr, uint64_t> by_remote;
  uint64_t next_link = 1;
  /// Outbound links: dial id -> (dialer, link id or 0).
  struct dial {
    caf::actor dialer;
    std::string address;
    uint64_t link = 0;
  };
  std::map<uint64_t, dial> dials;
  /// `flush` callers waiting for every buffer to empty.
  std::vector<caf::response_promise> drains;
  /// Acknowledgements held back while some buffer is over its limit.
  std::vector<caf::response_promise> held;

  static inline const char* name = "troupe.bus_router";
};

using router_ptr = caf::stateful_actor<router_state>*;

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

void set_local(router_ptr self, const interest_key& key, int delta) {
  auto& st = self->state;
  auto& n = st.local_count[key];
  bool was = n > 0;
  n += delta;
  bool is = n > 0;
  if (n == 0)
    st.local_count.erase(key);
  if (was == is)
    return;
  if (!key.first.empty()) {
    if (is) {
      auto eid = st.next_local++;
      auto [it, fresh] = st.local_ids.emplace(key, eid);
      static_cast<void>(fresh);
      st.local_by_id.emplace(eid, &it->first);
      st.local_index.insert(key.first, eid);
    } else if (auto it = st.local_ids.find(key); it != st.local_ids.end()) {
      st.local_index.erase(key.first, it->second);
      st.local_by_id.erase(it->second);
      st.local_ids.erase(it);
    }
  }
  set_source(self, key, 0, is);
}

/// Records that link `l` advertises `key` (or no longer does).
void set_remote(router_ptr self, const link_ptr& l, const interest_key& key,
                bool add) {
  if (!key.first.empty()) {
    std::unique_lock<std::shared_mutex> guard{self->state.core->table_mtx};
    if (add) {
      auto eid = l->next_entry++;
      auto [it, fresh] = l->keys.emplace(key, eid);
      if (!fresh)
        return;
      l->by_id.emplace(eid, &it->first);
      l->index.insert(key.first, eid);
    } else {
      auto it = l->keys.find(key);
      if (it == l->keys.end())
        return;
      l->index.erase(key.first, it->second);
      l->by_id.erase(it->second);
      l->keys.erase(it);
    }
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
               bool clean = false) {
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
        self->send(d.dialer, bus_unlinked_atom::value, why);
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
  thread_local record r;
  thread_local std::vector<uint64_t> ids;
  thread_local std::vector<std::string_view> rest;
  inject_options opts;
  bool over = false;
  size_t pos = 0;
  uint64_t n = 0;
  while (pos < data.size()) {
    if (!decode(data, pos, r)) {
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
      ids.clear();
      st.local_index.match(r.msg.subject, ids);
      for (auto g : r.groups) {
        bool here = std::any_of(ids.begin(), ids.end(), [&](uint64_t eid) {
          return st.local_by_id.at(eid)->second == g;
        });
        if (here)
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

caf::behavior router(router_ptr self, core_ptr core, bus* local) {
  install_log_handlers(self);
  auto& st = self->state;
  st.core = std::move(core);
  st.local = local;
  set_local(self, {std::string{}, node_key(st.core->id)}, 1);
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
        const std::string& group) {
      set_local(self, {pattern, group}, added ? 1 : -1);
    },
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
                   std::string{"refused: it is this node itself"});
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
              drop_link(self, lid, "refused: " + why);
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
            drop_link(self, lid, why);
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

void dial_failed(dialer_ptr self, const std::string& why) {
  auto& st = self->state;
  {
    std::lock_guard<std::mutex> guard{st.core->wait_mtx};
    auto& status = st.core->dials[st.id];
    status.last_error = why;
    ++status.failures;
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
      dial_failed(self, error_text(why));
    },
    // The router's news of the link.
    [=](bus_linked_atom) {
      auto& s = self->state;
      s.linked = true;
      s.delays.reset();
    },
    // Reached, but refused (or the hello failed): back off.
    [=](bus_unlinked_atom, const std::string& why) {
      self->state.linked = false;
      dial_failed(self, why);
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
        guard, wait, [&] { return status.up || status.failures > 0; }))
    return caf::make_error(troupe::errc::timeout,
                           "no link to " + host + ":" + std::to_string(port)
                             + " within " + caf::deep_to_string(wait));
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
  std::shared_lock<std::shared_mutex> guard{core_->table_mtx};
  for (auto& [lid, l] : core_->links)
    out.peers += l->up ? 1 : 0;
  return out;
}

} // namespace troupe::bus
