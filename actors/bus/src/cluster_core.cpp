// The state that publishers and the router of a bus cluster share (see
// cluster_core.hpp): routing a published message to the links that want it,
// and appending it to their buffers.

#include "cluster_core.hpp"

#include <algorithm>
#include <utility>

#include <caf/send.hpp>

#include "troupe/runtime/random_id.hpp"

#include "cluster_router.hpp"
#include "wire.hpp"

namespace troupe::bus::detail {

cluster_core::cluster_core(node& hst, const net_config& config,
                           cluster_options options)
    : host(hst), cfg(config), opts(std::move(options)), id(random_id()) {
  // nop
}

cluster_core::~cluster_core() = default;

void cluster_core::interest_changed(bool added, const bus_interest& x) {
  caf::anon_send(router(), bus_local_atom::value, added, x.pattern,
                 x.queue_group);
}

size_t cluster_core::route(const bus_message_view& msg,
                           const std::vector<std::string_view>& served_groups) {
  if (closed.load(std::memory_order_relaxed))
    return 0;
  return forward(msg, 0, true, served_groups, 0, true);
}

size_t
cluster_core::route_request(const bus_message_view& msg,
                            const std::vector<std::string_view>& served_groups,
                            const std::shared_ptr<request_tracker>& t) {
  if (closed.load(std::memory_order_relaxed))
    return 0;
  return forward(msg, 0, true, served_groups, 0, true, true, nullptr, &t);
}

size_t cluster_core::forward(const bus_message_view& msg, uint64_t from,
                             bool plain,
                             const std::vector<std::string_view>& groups,
                             uint8_t hops, bool all_groups, bool may_wait,
                             bool* over_limit,
                             const std::shared_ptr<request_tracker>* req,
                             std::vector<uint64_t>* to) {
  struct target {
    cluster_link* link;
    bool plain = false;
    std::vector<std::string_view> groups;
  };
  thread_local std::vector<target> targets;
  thread_local std::vector<std::string_view> matched;
  thread_local std::vector<std::pair<std::string_view, size_t>> wanted;
  targets.clear();
  wanted.clear();
  std::shared_lock<std::shared_mutex> guard{table_mtx};
  for (auto& [lid, lp] : links) {
    auto* l = lp.get();
    if (lid == from || !l->up || l->keys.empty())
      continue;
    matched.clear();
    l->keys.match(msg.subject, matched);
    if (matched.empty())
      continue;
    target t{l, false, {}};
    for (auto group : matched) {
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
    if (append(*t.link, msg, hops, t.plain, t.groups, may_wait, over_limit,
               req)) {
      ++n;
      if (to != nullptr)
        to->push_back(t.link->id);
    }
  }
  return n;
}

bool cluster_core::append(cluster_link& l, const bus_message_view& msg,
                          uint8_t hops, bool plain,
                          const std::vector<std::string_view>& groups,
                          bool may_wait, bool* over_limit,
                          const std::shared_ptr<request_tracker>* req) {
  std::unique_lock<std::mutex> guard{l.mtx};
  if (l.buf.size() >= opts.link_buffer) {
    if (!may_wait) {
      // The router does not drop: it holds back the acknowledgement of
      // the batch this came in, so the sender slows down instead.
      if (over_limit != nullptr)
        *over_limit = true;
    } else if (l.stalled) {
      dropped.fetch_add(1, std::memory_order_relaxed);
      ++l.destined;
      return false;
    } else if (!l.room.wait_for(guard, opts.max_wait, [&] {
                 return l.dead || l.buf.size() < opts.link_buffer;
               })) {
      l.stalled = true;
      dropped.fetch_add(1, std::memory_order_relaxed);
      ++l.destined;
      return false;
    }
  }
  if (l.dead) {
    dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  encode_record(l.buf, msg, hops, plain, groups);
  ++l.buffered;
  ++l.destined;
  if (req != nullptr) {
    (*req)->forwarded();
    if (l.requests.size() >= l.prune_requests_at) {
      for (auto i = l.requests.begin(); i != l.requests.end();)
        i = i->second.expired() ? l.requests.erase(i) : std::next(i);
      l.prune_requests_at = std::max(size_t{1024}, 2 * l.requests.size());
    }
    l.requests[std::string{msg.reply_to}] = *req;
  }
  if (!l.flush_pending) {
    l.flush_pending = true;
    guard.unlock();
    caf::anon_send(router(), bus_flush_atom::value, l.id);
  }
  return true;
}

bool cluster_core::interested(std::string_view subject) {
  std::shared_lock<std::shared_mutex> guard{table_mtx};
  for (auto& [lid, l] : links)
    if (l->up && l->keys.matches(subject))
      return true;
  return false;
}

void cluster_core::notify_interest() {
  std::lock_guard<std::mutex> guard{wait_mtx};
  ++interest_version;
  wait_cv.notify_all();
}

} // namespace troupe::bus::detail
