#include "troupe/queue/task_queue.hpp"

#include <cstdlib>
#include <deque>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <cxxabi.h>
#include <spdlog/spdlog.h>

#include "troupe/queue/protocol.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/message_types.hpp"
#include "troupe/runtime/net.hpp"
#include "troupe/runtime/node.hpp"

#include "task_store.hpp"

namespace troupe::queue {

namespace detail {

std::string demangle(const char* mangled) {
  int status = 0;
  char* text = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (status != 0 || text == nullptr)
    return mangled;
  std::string result{text};
  std::free(text); // NOLINT: allocated by __cxa_demangle
  return result;
}

} // namespace detail

namespace {

using detail::raw_result;
using detail::task_store;

using tick_atom = caf::atom_constant<caf::atom("tqtick")>;
using get_timeout_atom = caf::atom_constant<caf::atom("tqgettmo")>;
using close_timeout_atom = caf::atom_constant<caf::atom("tqclosetmo")>;
using stats_atom = caf::atom_constant<caf::atom("tqstats")>;
using dead_atom = caf::atom_constant<caf::atom("tqdead")>;

using clock = std::chrono::steady_clock;

// The largest window a worker may ask for; more buys no speed and lets one
// worker hoard the queue.
constexpr uint32_t max_prefetch = 65536;

struct task_entry {
  std::vector<char> payload;
  uint32_t attempts = 0;
  // The worker holding the current lease, 0 if none.
  uint64_t worker = 0;
  std::string last_error;
};

struct worker_entry {
  caf::actor hdl;
  std::string node;
  uint32_t prefetch = 1;
  // Tasks whose current lease this worker holds.
  std::unordered_set<uint64_t> leased;
  // Tasks whose lease expired at this worker and that it has not answered:
  // it is still busy with them, so they still take room in its window.
  std::unordered_set<uint64_t> expired;

  size_t room() const {
    auto used = leased.size() + expired.size();
    return used < prefetch ? prefetch - used : 0;
  }
};

// One delivery; `leases` holds them in delivery order, which is also the
// order of their deadlines (all leases have the same length).
struct lease_mark {
  clock::time_point deadline;
  uint64_t id;
  uint32_t attempt;
};

struct getter {
  caf::response_promise promise;
  size_t max;
  uint64_t token;
};

// Invariants:
// (1) A task is in `tasks` until it has its result; its id is then at most
//     `last_id` and absent from `tasks`, which is how duplicates are found.
// (2) An id is in `ready` iff its entry has `worker == 0`; otherwise it is
//     in the `leased` set of exactly that worker.
// (3) Results wait in `results` only while no getter waits (and vice versa).
struct queue_state {
  queue_options opts;
  std::string task_type;
  std::string result_type;
  /// The master node, whose registry each worker must match.
  node_info local;
  std::shared_ptr<task_store> store;

  std::unordered_map<uint64_t, task_entry> tasks;
  std::deque<uint64_t> ready;
  std::map<uint64_t, worker_entry> workers;
  std::unordered_map<caf::actor_addr, uint64_t> worker_ids;
  uint64_t next_worker = 0;
  std::deque<lease_mark> leases;
  std::deque<raw_result> results;
  std::deque<getter> getters;
  std::vector<dead_letter> dead;
  uint64_t last_id = 0;
  uint64_t next_token = 0;
  bool closed = false;
  bool workers_told = false;
  size_t close_acks = 0;
  std::vector<caf::response_promise> close_waiters;
  queue_stats stats;

  static inline const char* name = "troupe.task_queue";
};

using queue_ptr = caf::stateful_actor<queue_state>*;

// Commits the store, if any; on failure logs and returns the error.
caf::error commit(queue_ptr self) {
  auto& st = self->state;
  if (!st.store)
    return caf::none;
  auto err = st.store->commit();
  if (err)
    troupe::log(self->system())
      .error("queue '{}': {}", st.opts.name, error_text(err));
  return err;
}

bool drained(const queue_state& st) {
  return st.tasks.empty();
}

void finish_close(queue_ptr self) {
  for (auto& rp : self->state.close_waiters)
    rp.deliver(caf::unit);
  self->state.close_waiters.clear();
}

// Tells every worker that the queue is closed and drained; close waiters are
// answered once all of them acknowledged (or after the close timeout).
void tell_workers(queue_ptr self, caf::timespan timeout) {
  auto& st = self->state;
  if (st.workers_told)
    return;
  st.workers_told = true;
  st.close_acks = st.workers.size();
  if (st.close_acks == 0) {
    finish_close(self);
    return;
  }
  for (auto& [wid, w] : st.workers) {
    self->request(w.hdl, timeout, tq_closed_atom::value)
      .then(
        [=]() {
          if (--self->state.close_acks == 0)
            finish_close(self);
        },
        [=](caf::error&) {
          if (--self->state.close_acks == 0)
            finish_close(self);
        });
  }
  self->delayed_send(self, timeout, close_timeout_atom::value);
}

void answer_getters(queue_ptr self) {
  auto& st = self->state;
  while (!st.getters.empty() && !st.results.empty()) {
    auto g = std::move(st.getters.front());
    st.getters.pop_front();
    std::vector<raw_result> batch;
    auto n = std::min(g.max, st.results.size());
    batch.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      batch.emplace_back(std::move(st.results.front()));
      st.results.pop_front();
    }
    g.promise.deliver(std::move(batch));
  }
  if (st.closed && drained(st) && st.results.empty()) {
    for (auto& g : st.getters)
      g.promise.deliver(
        caf::make_error(troupe::errc::closed, "queue '" + st.opts.name
                                                + "' is closed and "
                                                  "every result was "
                                                  "taken"));
    st.getters.clear();
  }
}

// Records the one result of task `id` (invariant 1).
void complete(queue_ptr self, uint64_t id, task_entry& entry, bool ok,
              std::vector<char> payload, std::string error) {
  auto& st = self->state;
  raw_result r;
  r.id = id;
  r.attempt = entry.attempts;
  r.ok = ok;
  r.payload = std::move(payload);
  r.error = std::move(error);
  if (st.store) {
    detail::stored_result sr;
    sr.id = id;
    sr.ok = ok;
    sr.payload.assign(r.payload.begin(), r.payload.end());
    sr.error = r.error;
    sr.attempts = r.attempt;
    // False for a task that already has a result, which invariant 1 rules
    // out here; a failed write surfaces at the next commit.
    st.store->add_result(sr);
  }
  if (!ok) {
    ++st.stats.dead;
    st.dead.push_back(dead_letter{id, r.attempt, r.error});
    troupe::log(self->system())
      .warn("queue '{}': task {} goes to the dead-letter list after {} "
            "attempts: {}",
            st.opts.name, id, r.attempt, r.error);
  }
  ++st.stats.results;
  st.results.emplace_back(std::move(r));
  st.tasks.erase(id);
}

// Ends the current lease of `id` without a result: back to the queue, or to
// the dead-letter list after `max_attempts`.
void lease_failed(queue_ptr self, uint64_t id, task_entry& entry,
                  std::string why) {
  auto& st = self->state;
  entry.worker = 0;
  entry.last_error = std::move(why);
  if (entry.attempts >= st.opts.max_attempts) {
    complete(self, id, entry, false, {}, entry.last_error);
    return;
  }
  if (st.store)
    st.store->set_attempts(id, entry.attempts);
  st.ready.push_front(id);
}

void dispatch(queue_ptr self) {
  auto& st = self->state;
  if (st.ready.empty() || st.workers.empty())
    return;
  auto deadline = clock::now() + st.opts.lease;
  for (auto& [wid, w] : st.workers) {
    if (st.ready.empty())
      break;
    auto room = w.room();
    // Half a window per batch keeps two batches in flight: the worker works
    // on one while the next is on its way.
    size_t max_batch = std::max<uint32_t>(1, w.prefetch / 2);
    while (room > 0 && !st.ready.empty()) {
      auto n = std::min({room, max_batch, st.ready.size()});
      std::vector<task_msg> batch;
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        auto id = st.ready.front();
        st.ready.pop_front();
        auto& entry = st.tasks[id];
        entry.worker = wid;
        ++entry.attempts;
        ++st.stats.delivered;
        if (entry.attempts > 1)
          ++st.stats.redelivered;
        w.leased.insert(id);
        st.leases.push_back(lease_mark{deadline, id, entry.attempts});
        batch.push_back(task_msg{id, entry.attempts, entry.payload});
      }
      room -= n;
      self->send(w.hdl, tq_tasks_atom::value, std::move(batch));
    }
  }
}

// Called after every change: commit, hand out results and tasks, and tell
// the workers once a closed queue has drained.
caf::error settle(queue_ptr self) {
  auto err = commit(self);
  answer_getters(self);
  dispatch(self);
  auto& st = self->state;
  if (st.closed && drained(st))
    tell_workers(self, std::chrono::seconds{2});
  return err;
}

// Records that the application is done with these results (`task_done`):
// a restarted durable queue does not hand them out again.
caf::error acknowledge(queue_ptr self, const std::vector<uint64_t>& ids) {
  auto& st = self->state;
  if (!st.store)
    return caf::none;
  for (auto id : ids)
    st.store->mark_consumed(id);
  return commit(self);
}

void expire_leases(queue_ptr self) {
  auto& st = self->state;
  auto now = clock::now();
  bool changed = false;
  while (!st.leases.empty() && st.leases.front().deadline <= now) {
    auto mark = st.leases.front();
    st.leases.pop_front();
    auto i = st.tasks.find(mark.id);
    if (i == st.tasks.end() || i->second.worker == 0
        || i->second.attempts != mark.attempt)
      continue; // answered or already redelivered
    auto& entry = i->second;
    auto w = st.workers.find(entry.worker);
    std::string who = "a worker";
    if (w != st.workers.end()) {
      w->second.leased.erase(mark.id);
      w->second.expired.insert(mark.id);
      who = "worker " + w->second.node;
    }
    troupe::log(self->system())
      .warn("queue '{}': task {}: lease expired at {}; redelivering",
            st.opts.name, mark.id, who);
    lease_failed(self, mark.id, entry,
                 "lease expired at " + who + " (attempt "
                   + std::to_string(mark.attempt) + ")");
    changed = true;
  }
  if (changed)
    settle(self);
}

void worker_lost(queue_ptr self, const caf::actor_addr& addr,
                 const caf::error& reason) {
  auto& st = self->state;
  auto i = st.worker_ids.find(addr);
  if (i == st.worker_ids.end())
    return;
  auto wid = i->second;
  st.worker_ids.erase(i);
  auto w = st.workers.find(wid);
  if (w == st.workers.end())
    return;
  auto why = "worker " + w->second.node + " lost ("
             + self->system().render(reason) + ")";
  if (reason || !w->second.leased.empty())
    troupe::log(self->system())
      .info("queue '{}': {}; redelivering its {} task(s)", st.opts.name, why,
            w->second.leased.size());
  else
    troupe::log(self->system())
      .info("queue '{}': worker {} left", st.opts.name, w->second.node);
  // Redeliver in id order: the oldest tasks first.
  std::vector<uint64_t> ids(w->second.leased.begin(), w->second.leased.end());
  std::sort(ids.begin(), ids.end(), std::greater<>{});
  st.workers.erase(w);
  for (auto id : ids) {
    auto t = st.tasks.find(id);
    if (t != st.tasks.end() && t->second.worker == wid)
      lease_failed(self, id, t->second, why);
  }
  st.stats.workers = static_cast<uint32_t>(st.workers.size());
  settle(self);
}

caf::behavior queue_actor(queue_ptr self, queue_options opts,
                          std::string task_type, std::string result_type,
                          node_info local, std::shared_ptr<task_store> store,
                          std::shared_ptr<detail::store_contents> contents) {
  install_log_handlers(self);
  auto& st = self->state;
  st.opts = std::move(opts);
  st.task_type = std::move(task_type);
  st.result_type = std::move(result_type);
  st.local = std::move(local);
  st.store = std::move(store);
  if (contents) {
    st.last_id = contents->last_id;
    st.closed = contents->closed;
    for (auto& t : contents->pending) {
      auto& entry = st.tasks[t.id];
      entry.payload.assign(t.payload.begin(), t.payload.end());
      entry.attempts = t.attempts;
      st.ready.push_back(t.id);
    }
    for (auto& r : contents->unconsumed) {
      raw_result x;
      x.id = r.id;
      x.attempt = r.attempts;
      x.ok = r.ok;
      x.payload.assign(r.payload.begin(), r.payload.end());
      x.error = r.error;
      st.results.emplace_back(std::move(x));
    }
    contents.reset();
    if (st.store)
      st.dead = [&] {
        std::vector<dead_letter> xs;
        for (auto& r : st.store->dead_letters())
          xs.push_back(dead_letter{r.id, r.attempts, r.error});
        return xs;
      }();
    st.stats.dead = st.dead.size();
  }
  self->set_down_handler(
    [=](caf::down_msg& msg) { worker_lost(self, msg.source, msg.reason); });
  auto tick = std::clamp<caf::timespan>(
    st.opts.lease / 4, std::chrono::milliseconds{10}, std::chrono::seconds{1});
  self->delayed_send(self, tick, tick_atom::value);
  return {
    [=](tq_join_atom, worker_hello& hello) -> caf::result<caf::actor> {
      auto& s = self->state;
      if (hello.task_type != s.task_type || hello.result_type != s.result_type)
        return caf::make_error(troupe::errc::type_mismatch,
                               "worker " + hello.node.name + " runs tasks "
                                 + hello.task_type + " -> " + hello.result_type
                                 + ", but queue '" + s.opts.name + "' holds "
                                 + s.task_type + " -> " + s.result_type);
      if (auto err = compare_registries(s.local, hello.node))
        return caf::make_error(troupe::errc::registry_mismatch,
                               "worker " + hello.node.name
                                 + " registered other message types than the "
                                   "master: "
                                 + error_text(err));
      if (hello.prefetch == 0)
        return caf::make_error(troupe::errc::invalid_option_value,
                               "prefetch must be at least 1");
      if (s.closed && drained(s))
        return caf::make_error(troupe::errc::closed,
                               "queue '" + s.opts.name + "' is closed");
      auto sender = caf::actor_cast<caf::actor>(self->current_sender());
      if (!sender)
        return caf::make_error(troupe::errc::invalid_option_value,
                               "anonymous join");
      auto addr = sender.address();
      auto known = s.worker_ids.find(addr);
      uint64_t wid;
      if (known != s.worker_ids.end()) {
        wid = known->second;
      } else {
        wid = ++s.next_worker;
        s.worker_ids.emplace(addr, wid);
        self->monitor(sender);
        ++s.stats.workers_seen;
      }
      auto& w = s.workers[wid];
      w.hdl = sender;
      w.node = hello.node.name;
      w.prefetch = std::min(hello.prefetch, max_prefetch);
      s.stats.workers = static_cast<uint32_t>(s.workers.size());
      troupe::log(self->system())
        .info("queue '{}': worker {} joined (prefetch {})", s.opts.name,
              hello.node.name, hello.prefetch);
      // Tasks may reach the worker before this reply; it answers them to
      // their sender, so the order does not matter.
      dispatch(self);
      return caf::actor_cast<caf::actor>(self);
    },
    [=](tq_results_atom, std::vector<result_msg>& xs) {
      auto& s = self->state;
      uint64_t wid = 0;
      if (auto& sender = self->current_sender(); sender != nullptr)
        if (auto i = s.worker_ids.find(sender->address());
            i != s.worker_ids.end())
          wid = i->second;
      auto w = s.workers.find(wid);
      for (auto& r : xs) {
        if (w != s.workers.end()) {
          w->second.leased.erase(r.id);
          w->second.expired.erase(r.id);
        }
        auto t = s.tasks.find(r.id);
        if (t == s.tasks.end()) {
          ++s.stats.duplicates;
          continue;
        }
        auto& entry = t->second;
        auto current = entry.worker == wid && entry.attempts == r.attempt;
        if (r.ok) {
          if (!current && entry.worker != 0) {
            // A late answer of an expired lease wins; the current holder's
            // answer will be a duplicate.
            if (auto o = s.workers.find(entry.worker); o != s.workers.end())
              o->second.leased.erase(r.id);
          } else if (entry.worker == 0) {
            // The task was waiting for redelivery: take it out of `ready`.
            s.ready.erase(std::find(s.ready.begin(), s.ready.end(), r.id));
          }
          complete(self, r.id, entry, true, std::move(r.payload), {});
        } else if (current) {
          lease_failed(self, r.id, entry, std::move(r.error));
        } else {
          entry.last_error = std::move(r.error);
        }
      }
      settle(self);
    },
    [=](caf::put_atom, std::vector<std::vector<char>>& payloads)
      -> caf::result<std::vector<uint64_t>> {
      auto& s = self->state;
      if (s.closed)
        return caf::make_error(troupe::errc::closed,
                               "queue '" + s.opts.name + "' is closed");
      std::vector<uint64_t> ids;
      ids.reserve(payloads.size());
      for (auto& p : payloads) {
        auto id = ++s.last_id;
        if (s.store)
          s.store->add_task(id, std::string{p.begin(), p.end()});
        s.tasks[id].payload = std::move(p);
        s.ready.push_back(id);
        ids.push_back(id);
      }
      s.stats.put += ids.size();
      if (auto err = settle(self))
        return err;
      return ids;
    },
    [=](caf::get_atom, uint64_t max, caf::timespan wait,
        const std::vector<uint64_t>& acks)
      -> caf::result<std::vector<raw_result>> {
      auto& s = self->state;
      if (!acks.empty())
        if (auto err = acknowledge(self, acks))
          return err;
      auto rp = self->make_response_promise<std::vector<raw_result>>();
      auto token = ++s.next_token;
      s.getters.push_back(
        getter{rp, static_cast<size_t>(std::max<uint64_t>(max, 1)), token});
      answer_getters(self);
      if (!s.getters.empty() && s.getters.back().token == token)
        self->delayed_send(self, wait, get_timeout_atom::value, token);
      return rp;
    },
    [=](get_timeout_atom, uint64_t token) {
      auto& gs = self->state.getters;
      auto i = std::find_if(gs.begin(), gs.end(),
                            [&](const getter& g) { return g.token == token; });
      if (i == gs.end())
        return;
      i->promise.deliver(
        caf::make_error(troupe::errc::timeout, "no result within the timeout"));
      gs.erase(i);
    },
    [=](caf::close_atom, caf::timespan timeout,
        const std::vector<uint64_t>& acks) -> caf::result<caf::unit_t> {
      auto& s = self->state;
      if (!acks.empty())
        if (auto err = acknowledge(self, acks))
          return err;
      if (!s.closed) {
        s.closed = true;
        if (s.store)
          s.store->close_queue();
      }
      if (auto err = commit(self))
        return err;
      if (!drained(s))
        return caf::unit;
      auto rp = self->make_response_promise<caf::unit_t>();
      s.close_waiters.push_back(rp);
      tell_workers(self, timeout);
      if (s.close_acks == 0)
        finish_close(self);
      answer_getters(self);
      return rp;
    },
    [=](close_timeout_atom) { finish_close(self); },
    [=](tick_atom) {
      expire_leases(self);
      self->delayed_send(self, tick, tick_atom::value);
    },
    [=](stats_atom) {
      auto& s = self->state;
      auto result = s.stats;
      result.pending = s.ready.size();
      result.leased = s.tasks.size() - s.ready.size();
      result.workers = static_cast<uint32_t>(s.workers.size());
      return caf::make_message(result.put, result.delivered, result.redelivered,
                               result.results, result.dead, result.duplicates,
                               result.pending, result.leased,
                               static_cast<uint64_t>(result.workers),
                               static_cast<uint64_t>(result.workers_seen));
    },
    [=](dead_atom) { return self->state.dead; },
    [=](caf::get_atom) { return self->state.opts.name; },
  };
}

// The actor published at the master's port: finds queues by name.
caf::behavior directory(caf::event_based_actor* self,
                        std::map<std::string, caf::actor> queues) {
  install_log_handlers(self);
  return {
    [=](tq_join_atom join, worker_hello& hello) -> caf::result<caf::message> {
      auto i = queues.find(hello.queue);
      if (i == queues.end()) {
        std::string names;
        for (auto& kvp : queues)
          names += (names.empty() ? "'" : ", '") + kvp.first + "'";
        return caf::make_error(errc::no_such_queue,
                               "no queue named '" + hello.queue
                                 + "' here (this master serves " + names + ")");
      }
      return self->delegate(i->second, join, std::move(hello));
    },
  };
}

} // namespace

namespace detail {

queue_core::queue_core(node& host, caf::actor hdl, std::string name,
                       queue_resume r)
    : host_(host), actor_(std::move(hdl)), name_(std::move(name)), resumed_(r) {
}

queue_core::~queue_core() = default;

caf::expected<std::shared_ptr<queue_core>>
queue_core::create(node& host, queue_options opts, std::string task_type,
                   std::string result_type) {
  std::shared_ptr<task_store> store;
  std::shared_ptr<store_contents> contents;
  queue_resume resumed;
  if (!opts.store.empty()) {
    contents = std::make_shared<store_contents>();
    auto opened = task_store::open(
      opts.store, store_meta{opts.name, task_type, result_type}, *contents);
    if (!opened)
      return std::move(opened.error());
    store = std::move(*opened);
    resumed.tasks = contents->last_id;
    resumed.consumed = contents->consumed;
    resumed.pending = contents->pending.size();
    resumed.closed = contents->closed;
  }
  auto name = opts.name;
  auto hdl = host.spawn(queue_actor, std::move(opts), std::move(task_type),
                        std::move(result_type), host.info(), std::move(store),
                        std::move(contents));
  return std::shared_ptr<queue_core>{
    new queue_core(host, std::move(hdl), std::move(name), resumed)};
}

caf::expected<std::vector<uint64_t>>
queue_core::put(std::vector<std::vector<char>> payloads) {
  caf::scoped_actor self{host_.system()};
  caf::expected<std::vector<uint64_t>> result{caf::error{}};
  self
    ->request(actor_, std::chrono::seconds{30}, caf::put_atom::value,
              std::move(payloads))
    .receive([&](std::vector<uint64_t>& ids) { result = std::move(ids); },
             [&](caf::error& err) { result = std::move(err); });
  return result;
}

caf::expected<std::vector<raw_result>>
queue_core::get(size_t max, caf::timespan timeout, std::vector<uint64_t> acks) {
  caf::scoped_actor self{host_.system()};
  caf::expected<std::vector<raw_result>> result{caf::error{}};
  // The queue answers at `timeout`; the request's own timeout only guards
  // against a queue that is gone.
  self
    ->request(actor_, timeout + std::chrono::seconds{5}, caf::get_atom::value,
              static_cast<uint64_t>(max), timeout, std::move(acks))
    .receive([&](std::vector<raw_result>& xs) { result = std::move(xs); },
             [&](caf::error& err) { result = std::move(err); });
  return result;
}

caf::error queue_core::close(caf::timespan timeout,
                             std::vector<uint64_t> acks) {
  caf::scoped_actor self{host_.system()};
  caf::error result;
  self
    ->request(actor_, timeout + std::chrono::seconds{5}, caf::close_atom::value,
              timeout, std::move(acks))
    .receive([] {}, [&](caf::error& err) { result = err; });
  return result;
}

queue_stats queue_core::stats() {
  caf::scoped_actor self{host_.system()};
  queue_stats result;
  self->request(actor_, std::chrono::seconds{10}, stats_atom::value)
    .receive(
      [&](uint64_t put, uint64_t delivered, uint64_t redelivered,
          uint64_t results, uint64_t dead, uint64_t duplicates,
          uint64_t pending, uint64_t leased, uint64_t workers,
          uint64_t workers_seen) {
        result.put = put;
        result.delivered = delivered;
        result.redelivered = redelivered;
        result.results = results;
        result.dead = dead;
        result.duplicates = duplicates;
        result.pending = pending;
        result.leased = leased;
        result.workers = static_cast<uint32_t>(workers);
        result.workers_seen = static_cast<uint32_t>(workers_seen);
      },
      [](caf::error&) {});
  return result;
}

std::vector<dead_letter> queue_core::dead_letters() {
  caf::scoped_actor self{host_.system()};
  std::vector<dead_letter> result;
  self->request(actor_, std::chrono::seconds{10}, dead_atom::value)
    .receive([&](std::vector<dead_letter>& xs) { result = std::move(xs); },
             [](caf::error&) {});
  return result;
}

} // namespace detail

caf::expected<uint16_t> serve_queues(node& host, const net_config& cfg,
                                     uint16_t port,
                                     const std::vector<caf::actor>& queues) {
  // Ask each queue its name, then publish a directory of them.
  std::map<std::string, caf::actor> by_name;
  caf::scoped_actor self{host.system()};
  for (auto& q : queues) {
    caf::error err;
    self->request(q, std::chrono::seconds{10}, caf::get_atom::value)
      .receive([&](std::string& name) { by_name.emplace(std::move(name), q); },
               [&](caf::error& x) { err = std::move(x); });
    if (err)
      return err;
  }
  auto dir = host.spawn(directory, std::move(by_name));
  return listen(host.system(), dir, cfg, port);
}

} // namespace troupe::queue
