// The lease bookkeeping of a task queue: how its queue actor hands out
// tasks as leases, takes results, redelivers the tasks of expired leases and
// lost workers, dead-letters tasks that failed too often, answers `get`s and
// `close`s, and commits the store. See queue_state.hpp.

#include "queue_state.hpp"

#include <algorithm>
#include <functional>
#include <utility>

#include <caf/event_based_actor.hpp>
#include <spdlog/spdlog.h>

#include "troupe/queue/errc.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/logging.hpp"

#include "task_store.hpp"

namespace troupe::queue::detail {

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

void finish_close(queue_ptr self) {
  for (auto& rp : self->state.close_waiters)
    rp.deliver(caf::unit);
  self->state.close_waiters.clear();
}

void tell_workers(queue_ptr self, caf::timespan timeout) {
  auto& st = self->state;
  if (st.workers_told)
    return;
  st.workers_told = true;
  st.close_acks = st.workers.size();
  if (close_may_finish(st)) {
    finish_close(self);
    return;
  }
  for (auto& [wid, w] : st.workers) {
    self->request(w.hdl, timeout, tq_closed_atom::value)
      .then(
        [=]() {
          --self->state.close_acks;
          if (close_may_finish(self->state))
            finish_close(self);
        },
        [=](caf::error&) {
          --self->state.close_acks;
          if (close_may_finish(self->state))
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

caf::error check_open(queue_ptr self) {
  auto& st = self->state;
  if (st.closed)
    return caf::make_error(troupe::errc::closed,
                           "queue '" + st.opts.name + "' is closed");
  return caf::none;
}

put_receipt add_task(queue_ptr self, std::vector<char>& payload,
                     const std::string& key) {
  auto& st = self->state;
  auto id = st.last_id + 1;
  if (st.store) {
    id = st.store->add_task(id, std::string{payload.begin(), payload.end()},
                            key);
    if (id == 0)
      return {};
  } else if (!key.empty()) {
    if (auto [k, fresh] = st.keys.emplace(key, id); !fresh)
      id = k->second;
  }
  if (id <= st.last_id)
    return {id, false};
  st.last_id = id;
  st.tasks[id].payload = std::move(payload);
  st.ready.push_back(id);
  ++st.stats.put;
  return {id, true};
}

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
    stored_result sr;
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

namespace {

// Returns the retry backoff after the `attempts`th delivery failed: the
// base doubled per earlier failure, capped, then drawn from its upper half.
caf::timespan retry_delay(queue_state& st, uint32_t attempts) {
  auto base = st.opts.retry_backoff;
  if (base <= caf::timespan::zero())
    return caf::timespan::zero();
  auto cap = std::max(base, st.opts.retry_backoff_max);
  auto delay = base;
  for (uint32_t i = 1; i < attempts && delay < cap; ++i)
    delay *= 2;
  delay = std::min(delay, cap);
  std::uniform_int_distribution<caf::timespan::rep> half{0, delay.count() / 2};
  return delay - caf::timespan{half(st.rng)};
}

} // namespace

void lease_failed(queue_ptr self, uint64_t id, task_entry& entry,
                  std::string why, bool failed) {
  auto& st = self->state;
  entry.worker = 0;
  entry.last_error = std::move(why);
  if (entry.attempts >= st.opts.max_attempts) {
    complete(self, id, entry, false, {}, entry.last_error);
    return;
  }
  if (st.store)
    st.store->set_attempts(id, entry.attempts);
  if (auto delay
      = failed ? retry_delay(st, entry.attempts) : caf::timespan::zero();
      delay > caf::timespan::zero()) {
    entry.retrying = true;
    ++st.retrying;
    self->delayed_send(self, delay, retry_atom::value, id, entry.attempts);
    return;
  }
  st.ready.push_front(id);
}

void retry(queue_ptr self, uint64_t id, uint32_t attempt) {
  auto& st = self->state;
  auto i = st.tasks.find(id);
  if (i == st.tasks.end() || !i->second.retrying
      || i->second.attempts != attempt)
    return; // answered late by the worker whose lease failed
  i->second.retrying = false;
  --st.retrying;
  st.ready.push_front(id);
  dispatch(self);
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

caf::error settle(queue_ptr self) {
  auto err = commit(self);
  answer_getters(self);
  dispatch(self);
  auto& st = self->state;
  if (st.closed && drained(st))
    tell_workers(self, std::chrono::seconds{2});
  return err;
}

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
  if (reason)
    st.missing.insert(addr);
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

} // namespace troupe::queue::detail
