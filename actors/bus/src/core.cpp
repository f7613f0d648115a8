// The state of a bus (see core.hpp): subscribing, publishing to the
// matching subscriptions and the router, injecting what a router brought,
// request/reply, and shutdown.

#include "core.hpp"

#include <algorithm>
#include <charconv>
#include <utility>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/deep_to_string.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/sec.hpp>
#include <spdlog/spdlog.h>

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/runtime/random_id.hpp"

namespace troupe::bus::detail {

namespace {

// The largest payload (the buffers store sizes in 32 bits).
constexpr size_t max_payload = UINT32_MAX;

// Distinguishes the buses of this process in the threads' snapshot caches.
std::atomic<uint64_t> next_bus_id{1};

// Gives `m` to one live member of `g`, preferring one with room, starting
// round-robin. Returns whether a member took it (or dropped it by policy).
bool deliver_group(const bus_snapshot::group& g, const bus_message_view& m) {
  auto n = g.members.size();
  auto start = g.next.fetch_add(1, std::memory_order_relaxed);
  for (size_t k = 0; k < n; ++k) {
    auto& s = g.members[(start + k) % n];
    if (s->has_room() && s->push(m) != push_result::closed)
      return true;
  }
  for (size_t k = 0; k < n; ++k)
    if (g.members[(start + k) % n]->push(m) != push_result::closed)
      return true;
  return false;
}

// The tracker of one request (`bus_core::request`): counts the nodes the
// router forwarded it to, and fails the request when every one of them is
// lost, once publishing is over (a router that reports nothing, like the
// default `route_request`, never fails it).
class tracker : public request_tracker {
public:
  tracker(std::weak_ptr<pending_request> p, std::string subject)
      : p_(std::move(p)), subject_(std::move(subject)) {
    // nop
  }

  void forwarded() override {
    std::lock_guard<std::mutex> guard{mtx_};
    ++carriers_;
    tracked_ = true;
  }

  void lost(const std::string& why, bool maybe_delivered) override {
    std::unique_lock<std::mutex> guard{mtx_};
    if (carriers_ == 0)
      return;
    --carriers_;
    maybe_ = maybe_ || maybe_delivered;
    if (!why.empty())
      why_ = why_.empty() ? why : why_ + "; " + why;
    fire(guard);
  }

  /// Publishing is over and no local subscriber got the request: from now
  /// on, losing the last node fails it.
  void published() {
    std::unique_lock<std::mutex> guard{mtx_};
    publishing_ = false;
    fire(guard);
  }

private:
  void fire(std::unique_lock<std::mutex>& guard) {
    if (publishing_ || !tracked_ || carriers_ > 0 || fired_)
      return;
    fired_ = true;
    auto code = maybe_ ? errc::link_lost : errc::no_responders;
    auto text
      = (maybe_ ? "lost the request on '" : "no responder for a request on '")
        + subject_ + "': " + why_;
    guard.unlock();
    if (auto p = p_.lock())
      p->deliver(caf::make_error(code, std::move(text)));
  }

  std::mutex mtx_;
  size_t carriers_ = 0;
  bool tracked_ = false;
  bool publishing_ = true;
  bool fired_ = false;
  bool maybe_ = false;
  std::string why_;
  std::weak_ptr<pending_request> p_;
  std::string subject_;
};

} // namespace

bus_core::bus_core(node& host)
    : host_(host), log_(&host.log()), id_(next_bus_id.fetch_add(1)),
      cache_(id_) {
  inbox_prefix_ = "_INBOX." + to_hex(random_id() ^ id_) + ".";
  // Replies to this bus's requests: fulfilled on the replier's thread.
  static_cast<void>(
    subscribe_impl(inbox_prefix_ + "*", subscription_options{}, nullptr,
                   [this](const bus_message_view& m) { on_reply(m); }));
}

// -- subscriptions ------------------------------------------------------------

caf::expected<std::shared_ptr<bus_sub>>
bus_core::subscribe(std::string_view pattern, subscription_options opts,
                    bus_callback f) {
  if (auto err = validate_pattern(pattern))
    return err;
  if (opts.capacity == 0)
    return caf::make_error(caf::sec::invalid_argument,
                           "a subscription needs a capacity of at least 1");
  if (!opts.queue_group.empty()) {
    auto& g = opts.queue_group;
    if (std::any_of(g.begin(), g.end(), [](char c) {
          auto u = static_cast<unsigned char>(c);
          return u <= 0x20 || u == 0x7f;
        }))
      return caf::make_error(errc::invalid_subject,
                             "invalid queue group '" + g
                               + "': whitespace or control character");
  }
  if (!f)
    return caf::make_error(caf::sec::invalid_argument,
                           "a subscription needs a callback");
  return subscribe_impl(std::string{pattern}, std::move(opts), std::move(f),
                        nullptr);
}

caf::expected<std::shared_ptr<bus_sub>>
bus_core::subscribe_impl(std::string pattern, subscription_options opts,
                         bus_callback f, bus_sub::sink_fn sink) {
  auto blocking = opts.blocking;
  auto sub = std::make_shared<bus_sub>(next_sub_id_.fetch_add(1),
                                       std::move(pattern), std::move(opts),
                                       std::move(f), std::move(sink), log_);
  return add(std::move(sub), blocking);
}

void bus_core::remove(const std::shared_ptr<bus_sub>& sub) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!closed_ && subs_.erase(sub->id) > 0) {
      index_.erase(sub->pattern, sub->id);
      changed();
      if (interest_.remove(sub->pattern, sub->group) && router_)
        router_->interest_changed(false, {sub->pattern, sub->group});
    }
  }
  sub->close();
}

// -- publishing ---------------------------------------------------------------

caf::error bus_core::publish(const bus_message_view& m, size_t* receivers) {
  return publish(m, receivers, nullptr, nullptr);
}

caf::error bus_core::publish(const bus_message_view& m, size_t* receivers,
                             size_t* local,
                             const std::shared_ptr<request_tracker>& t) {
  if (m.payload.size() > max_payload)
    return payload_too_large(m);
  caf::error err;
  auto* entry = find(m.subject, err);
  if (entry == nullptr)
    return err;
  // A router may publish to another bus on this thread, which may reuse
  // this thread's cache slot: then keep the snapshot alive ourselves.
  snapshot_ptr keep;
  if ((*entry)->router)
    keep = *entry;
  auto& snap = **entry;
  size_t n = 0;
  for (auto& s : snap.plain)
    if (s->push(m) != push_result::closed)
      ++n;
  if (!snap.router) {
    for (auto& g : snap.groups)
      if (deliver_group(*g, m))
        ++n;
  } else {
    std::vector<std::string_view> served;
    for (auto& g : snap.groups)
      if (deliver_group(*g, m)) {
        ++n;
        served.push_back(g->name);
      }
    if (local != nullptr)
      *local = n;
    n += t ? snap.router->route_request(m, served, t)
           : snap.router->route(m, served);
  }
  if (local != nullptr && !snap.router)
    *local = n;
  if (receivers != nullptr)
    *receivers = n;
  return caf::none;
}

caf::error bus_core::inject(const bus_message_view& m,
                            const inject_options& opts) {
  if (m.payload.size() > max_payload)
    return payload_too_large(m);
  if (!m.reply_to.empty())
    if (auto e = validate_subject(m.reply_to))
      return e;
  caf::error err;
  auto* entry = find(m.subject, err);
  if (entry == nullptr)
    return err;
  auto keep = *entry;
  if (opts.plain)
    for (auto& s : keep->plain)
      s->push(m);
  for (auto& name : opts.queue_groups)
    if (auto* g = keep->find_group(name))
      deliver_group(*g, m);
  return caf::none;
}

// -- request/reply ------------------------------------------------------------

caf::expected<bus_message> bus_core::request(bus_message_view m,
                                             caf::timespan timeout) {
  auto p = std::make_shared<pending_request>();
  uint64_t rid = 0;
  {
    std::lock_guard<std::mutex> guard{req_mtx_};
    if (requests_closed_)
      return caf::make_error(troupe::errc::closed, "the bus has ended");
    rid = ++next_request_;
    requests_.emplace(rid, p);
  }
  auto reply_to = inbox_prefix_ + std::to_string(rid);
  m.reply_to = reply_to;
  size_t receivers = 0;
  size_t local = 0;
  auto t = std::make_shared<tracker>(p, std::string{m.subject});
  auto err = publish(m, &receivers, &local, t);
  auto forget = [this, rid] {
    std::lock_guard<std::mutex> guard{req_mtx_};
    requests_.erase(rid);
  };
  if (err || receivers == 0) {
    forget();
    if (err)
      return err;
    return caf::make_error(errc::no_responders,
                           "no subscriber for a request on '"
                             + std::string{m.subject} + "'");
  }
  // Only remote responders: the request fails as soon as the router says
  // that every node it went to is lost.
  if (local == 0)
    t->published();
  auto result
    = p->take(timeout, "no reply to a request on '" + std::string{m.subject}
                         + "' within " + caf::deep_to_string(timeout));
  forget(); // a reply after the timeout finds no request and is dropped
  return result;
}

// -- the router hook ----------------------------------------------------------

std::vector<bus_interest> bus_core::attach(std::shared_ptr<bus_router> r) {
  std::lock_guard<std::mutex> guard{mtx_};
  router_ = std::move(r);
  changed();
  if (!router_)
    return {};
  return interest_.list();
}

// -- shutdown -----------------------------------------------------------------

void bus_core::shutdown() {
  std::unordered_map<uint64_t, std::shared_ptr<bus_sub>> subs;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (closed_)
      return;
    closed_ = true;
    subs.swap(subs_);
    index_ = subject_index{};
    interest_.clear();
    router_.reset();
    changed();
  }
  for (auto& [id, sub] : subs)
    sub->close();
  std::lock_guard<std::mutex> guard{req_mtx_};
  requests_closed_ = true;
  for (auto& [id, p] : requests_)
    p->deliver(
      caf::make_error(troupe::errc::closed, "the bus ended before the reply"));
}

// -- private ------------------------------------------------------------------

caf::expected<std::shared_ptr<bus_sub>>
bus_core::add(std::shared_ptr<bus_sub> sub, bool blocking) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (closed_)
    return caf::make_error(troupe::errc::closed, "the bus has ended");
  if (!sub->is_sink()) {
    caf::actor hdl;
    if (blocking)
      hdl = host_.system().spawn<caf::detached>(drainer, sub);
    else
      hdl = host_.system().spawn(drainer, sub);
    // Runs at once if the actor is already gone.
    std::weak_ptr<bus_sub> weak = sub;
    caf::actor_cast<caf::abstract_actor*>(hdl)->attach_functor([weak] {
      if (auto s = weak.lock())
        s->drainer_down();
    });
    host_.track(caf::actor_cast<caf::actor_addr>(hdl));
    sub->start(std::move(hdl));
  }
  index_.insert(sub->pattern, sub->id);
  subs_.emplace(sub->id, sub);
  changed();
  if (interest_.add(sub->pattern, sub->group) && router_)
    router_->interest_changed(true, {sub->pattern, sub->group});
  return sub;
}

caf::error bus_core::payload_too_large(const bus_message_view& m) {
  return caf::make_error(caf::sec::invalid_argument,
                         "the payload of a message on '"
                           + std::string{m.subject} + "' exceeds 4 GiB: "
                           + std::to_string(m.payload.size()) + " bytes");
}

void bus_core::changed() {
  cache_.invalidate();
}

const snapshot_ptr* bus_core::find(std::string_view subject, caf::error& err) {
  cache_slot* slot = nullptr;
  if (auto* hit = cache_.find(subject, slot))
    return hit;
  if (auto e = validate_subject(subject)) {
    err = std::move(e);
    return nullptr;
  }
  std::lock_guard<std::mutex> guard{mtx_};
  if (closed_) {
    err = caf::make_error(troupe::errc::closed, "the bus has ended");
    return nullptr;
  }
  return cache_.store(*slot, subject,
                      [this](std::string_view x) { return build(x); });
}

snapshot_ptr bus_core::build(std::string_view subject) {
  auto snap = std::make_shared<bus_snapshot>();
  snap->subject = std::string{subject};
  snap->router = router_;
  ids_.clear();
  index_.match(subject, ids_);
  // Stable order (by subscription), so round-robin is fair.
  std::sort(ids_.begin(), ids_.end());
  for (auto id : ids_) {
    auto& sub = subs_.at(id);
    if (sub->group.empty()) {
      snap->plain.push_back(sub);
      continue;
    }
    bus_snapshot::group* g = nullptr;
    for (auto& x : snap->groups)
      if (x->name == sub->group)
        g = x.get();
    if (g == nullptr) {
      snap->groups.push_back(std::make_unique<bus_snapshot::group>());
      g = snap->groups.back().get();
      g->name = sub->group;
    }
    g->members.push_back(sub);
  }
  return snap;
}

void bus_core::on_reply(const bus_message_view& m) {
  auto tail = m.subject.substr(inbox_prefix_.size());
  uint64_t rid = 0;
  auto [end, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), rid);
  if (ec != std::errc{} || end != tail.data() + tail.size())
    return;
  std::shared_ptr<pending_request> p;
  {
    std::lock_guard<std::mutex> guard{req_mtx_};
    auto i = requests_.find(rid);
    if (i == requests_.end() || i->second->ready())
      return; // timed out, or a later reply: the first one wins
    p = i->second;
  }
  bus_message reply;
  reply.subject.assign(m.subject);
  reply.reply_to.assign(m.reply_to);
  reply.payload.assign(m.payload);
  reply.type = m.type;
  p->deliver(std::move(reply)); // ignored if another reply came first
}

} // namespace troupe::bus::detail
