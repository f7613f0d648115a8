// The behavior of a task queue's queue actor: the handlers of the worker
// protocol (join, results) and of the master's requests (put, get, close,
// stats, dead letters, name), and the restart of a durable queue from what
// its store held. The bookkeeping they share is in queue_state.cpp.

#include "queue_actor.hpp"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <spdlog/spdlog.h>

#include "troupe/queue/protocol.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/logging.hpp"

#include "task_store.hpp"

namespace troupe::queue::detail {

caf::behavior queue_actor(queue_ptr self, queue_options opts,
                          std::string task_type, std::string result_type,
                          node_info local, std::shared_ptr<task_store> store,
                          std::shared_ptr<store_contents> contents) {
  install_log_handlers(self);
  auto& st = self->state;
  st.opts = std::move(opts);
  st.task_type = std::move(task_type);
  st.result_type = std::move(result_type);
  st.local = std::move(local);
  st.store = std::move(store);
  if (contents) {
    st.resumed = contents->last_id > 0;
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
  // A node that stops ends this actor with requests still waiting (a `get`
  // for the next result, a `close`): tell them, or their callers wait out
  // their whole timeout.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    if (msg.reason == caf::exit_reason::normal)
      return; // as CAF's default handler
    auto& s = self->state;
    auto why = caf::make_error(troupe::errc::shutting_down,
                               "queue '" + s.opts.name + "' is stopping");
    for (auto& g : s.getters)
      g.promise.deliver(why);
    s.getters.clear();
    for (auto& rp : s.close_waiters)
      rp.deliver(why);
    s.close_waiters.clear();
    self->quit(std::move(msg.reason));
  });
  auto tick = std::clamp<caf::timespan>(
    st.opts.lease / 4, std::chrono::milliseconds{10}, std::chrono::seconds{1});
  self->delayed_send(self, tick, tick_atom::value);
  return {
    [=](tq_join_atom, worker_hello& hello) -> caf::result<caf::actor> {
      auto& s = self->state;
      // The worker logs its refusal too; a refused worker tries again a few
      // times (worker_options::max_refusals).
      auto refuse = [&](caf::error err) {
        troupe::log(self->system())
          .error("queue '{}': refused worker {}: {}", s.opts.name,
                 hello.node.name, error_text(err));
        return err;
      };
      if (hello.task_type != s.task_type || hello.result_type != s.result_type)
        return refuse(caf::make_error(
          troupe::errc::type_mismatch,
          "worker " + hello.node.name + " runs tasks " + hello.task_type
            + " -> " + hello.result_type + ", but queue '" + s.opts.name
            + "' holds " + s.task_type + " -> " + s.result_type));
      if (auto err = compare_registries(s.local, hello.node))
        return refuse(caf::make_error(troupe::errc::registry_mismatch,
                                      "worker " + hello.node.name
                                        + " registered other message types "
                                          "than the master: "
                                        + error_text(err)));
      if (hello.prefetch == 0)
        return refuse(caf::make_error(troupe::errc::invalid_option_value,
                                      "prefetch must be at least 1"));
      auto sender = caf::actor_cast<caf::actor>(self->current_sender());
      if (s.closed && drained(s)) {
        // A worker that missed the close (it was away) learns it now.
        if (sender && s.missing.erase(sender.address()) > 0
            && close_may_finish(s))
          finish_close(self);
        troupe::log(self->system())
          .info("queue '{}': told worker {} that the queue is closed",
                s.opts.name, hello.node.name);
        return caf::make_error(troupe::errc::closed,
                               "queue '" + s.opts.name + "' is closed");
      }
      if (!sender)
        return refuse(caf::make_error(troupe::errc::invalid_option_value,
                                      "anonymous join"));
      auto addr = sender.address();
      s.missing.erase(addr);
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
          } else if (entry.retrying) {
            // The task waits out its backoff: its timer finds it gone.
            entry.retrying = false;
            --s.retrying;
          } else if (entry.worker == 0) {
            // The task was waiting for redelivery: take it out of `ready`.
            s.ready.erase(std::find(s.ready.begin(), s.ready.end(), r.id));
          }
          complete(self, r.id, entry, true, std::move(r.payload), {});
        } else if (current) {
          lease_failed(self, r.id, entry, std::move(r.error), true);
        } else {
          entry.last_error = std::move(r.error);
        }
      }
      settle(self);
    },
    [=](caf::put_atom, std::vector<std::vector<char>>& payloads)
      -> caf::result<std::vector<uint64_t>> {
      if (auto err = check_open(self))
        return err;
      std::vector<uint64_t> ids;
      ids.reserve(payloads.size());
      for (auto& p : payloads) {
        auto r = add_task(self, p, {});
        if (r.id == 0)
          break; // the commit below reports why
        ids.push_back(r.id);
      }
      if (auto err = settle(self))
        return err;
      return ids;
    },
    [=](
      caf::put_atom, std::vector<std::vector<char>>& payloads,
      std::vector<std::string>& keys) -> caf::result<std::vector<put_receipt>> {
      if (auto err = check_open(self))
        return err;
      std::vector<put_receipt> receipts;
      receipts.reserve(payloads.size());
      for (size_t i = 0; i < payloads.size() && i < keys.size(); ++i) {
        auto r = add_task(self, payloads[i], keys[i]);
        if (r.id == 0)
          break; // the commit below reports why
        receipts.push_back(r);
      }
      if (auto err = settle(self))
        return err;
      return receipts;
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
      // Workers that may have missed the close (away, or of a previous
      // master) get until `timeout` to come back and hear it.
      if (close_may_finish(s))
        finish_close(self);
      else
        self->delayed_send(self, timeout, close_timeout_atom::value);
      answer_getters(self);
      return rp;
    },
    [=](close_timeout_atom) { finish_close(self); },
    [=](retry_atom, uint64_t id, uint32_t attempt) {
      retry(self, id, attempt);
    },
    [=](tick_atom) {
      expire_leases(self);
      self->delayed_send(self, tick, tick_atom::value);
    },
    [=](stats_atom) {
      auto& s = self->state;
      auto result = s.stats;
      result.pending = s.ready.size();
      result.retrying = s.retrying;
      result.leased = s.tasks.size() - s.ready.size() - s.retrying;
      result.workers = static_cast<uint32_t>(s.workers.size());
      return caf::make_message(result.put, result.delivered, result.redelivered,
                               result.results, result.dead, result.duplicates,
                               result.pending, result.leased, result.retrying,
                               static_cast<uint64_t>(result.workers),
                               static_cast<uint64_t>(result.workers_seen));
    },
    [=](dead_atom) { return self->state.dead; },
    [=](caf::get_atom) { return self->state.opts.name; },
  };
}

} // namespace troupe::queue::detail
