// The worker side of the task queue: connects to a master, joins a queue,
// runs leased tasks and answers them, and reconnects when the master goes.

#include <algorithm>
#include <chrono>

#include <caf/actor_system.hpp>
#include <caf/after.hpp>
#include <caf/deep_to_string.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <spdlog/spdlog.h>

#include "troupe/queue/protocol.hpp"
#include "troupe/queue/task_queue.hpp"
#include "troupe/runtime/dialer.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/net.hpp"
#include "troupe/runtime/node.hpp"

namespace troupe::queue {

namespace {

using reconnect_atom = caf::atom_constant<caf::atom("tqreconn")>;

/// `(give_up_atom, uint64_t epoch)`: `give_up_after` passed since the worker
/// started or lost its master; ignored if a join succeeded since (the epoch
/// moved on).
using give_up_atom = caf::atom_constant<caf::atom("tqgiveup")>;

struct worker_state {
  worker_options opts;
  worker_hello hello;
  detail::raw_task_fn fn;
  worker_listener listener;
  const net_config* cfg = nullptr;
  caf::actor queue;
  backoff delays;
  // Why the last attempt failed (empty once joined): a failure is logged
  // when its reason changes, not at every attempt.
  std::string last_failure;
  // The last refusal that retrying does not cure, and how many times in a
  // row it came (see worker_options::max_refusals).
  std::string refusal;
  uint32_t refusals = 0;
  // Moves on at each join and each loss: tells a stale give-up timer.
  uint64_t epoch = 0;
  // Adaptive window (see worker_options::adaptive): the window announced to
  // the master and the average time per task, in nanoseconds (0: unknown).
  uint32_t window = 2;
  double avg_task_ns = 0;

  static inline const char* name = "troupe.task_worker";
};

using worker_ptr = caf::stateful_actor<worker_state>*;

std::string address(const worker_options& opts) {
  if (opts.local_queue)
    return "the local queue '" + opts.queue + "'";
  return opts.host + ":" + std::to_string(opts.port);
}

void emit(worker_ptr self, worker_event ev, const std::string& text) {
  if (self->state.listener)
    self->state.listener(ev, text);
}

std::string render(caf::timespan x) {
  return caf::deep_to_string(x);
}

// Ends a worker whose local queue has stopped (`why`): it cannot come back.
void local_queue_gone(worker_ptr self, const std::string& why) {
  auto text = address(self->state.opts) + " stopped (" + why + ")";
  troupe::log(self->system()).info("worker: {}; leaving", text);
  emit(self, worker_event::closed, text);
  self->quit();
}

// Starts the clock of `give_up_after`: the worker started or lost its master.
void out_of_reach(worker_ptr self) {
  auto& st = self->state;
  ++st.epoch;
  if (st.opts.give_up_after > caf::timespan{0})
    self->delayed_send(self, st.opts.give_up_after, give_up_atom::value,
                       st.epoch);
}

// Ends the worker with `err`, which says why, logged at error level.
void give_up(worker_ptr self, caf::error err) {
  auto text = error_text(err);
  troupe::log(self->system()).error("worker: giving up: {}", text);
  emit(self, worker_event::failed, text);
  self->quit(std::move(err));
}

// Returns whether retrying cannot cure `err` until a configuration changes:
// the master, or its gate, turned the worker away.
bool is_refusal(const caf::error& err) {
  return err == troupe::errc::refused || err == troupe::errc::tls_config
         || err == troupe::errc::insecure_refused
         || err == troupe::errc::type_mismatch
         || err == troupe::errc::registry_mismatch || err == errc::no_such_queue
         || err == troupe::errc::invalid_option_value;
}

// Handles a failed attempt (a connect or a join; `err` says why): a refusal
// that came `max_refusals` times in a row ends the worker, anything else is
// retried after a backoff. Logs when the reason changes.
void attempt_failed(worker_ptr self, caf::error err) {
  auto& st = self->state;
  auto why = error_text(err);
  auto changed = why != st.last_failure;
  st.last_failure = why;
  auto& log = troupe::log(self->system());
  if (is_refusal(err)) {
    if (why == st.refusal) {
      ++st.refusals;
    } else {
      st.refusal = why;
      st.refusals = 1;
    }
    if (st.refusals >= st.opts.max_refusals) {
      auto text = why + " (refused " + std::to_string(st.refusals)
                  + (st.refusals == 1 ? " time" : " times in a row")
                  + "; max_refusals, --max-refusals)";
      give_up(self, caf::error{err.code(), err.category(),
                               caf::make_message(std::move(text))});
      return;
    }
    log.error("worker: refused ({} of {}): {}; retrying", st.refusals,
              st.opts.max_refusals, why);
  } else if (changed) {
    log.warn("worker: {}; retrying", why);
  } else {
    log.debug("worker: {}; retrying", why);
  }
  emit(self, worker_event::disconnected, why);
  self->delayed_send(self, st.delays.next(), reconnect_atom::value);
}

uint32_t initial_window(const worker_options& opts) {
  return opts.adaptive ? std::min<uint32_t>(2, opts.prefetch) : opts.prefetch;
}

// Folds the time of a batch into the average and, if the window should
// change by at least a factor of two, tells the master the new one.
void adapt_window(worker_ptr self, size_t tasks, caf::timespan elapsed) {
  auto& st = self->state;
  if (!st.opts.adaptive || tasks == 0 || !st.queue)
    return;
  auto per_task = static_cast<double>(elapsed.count()) / tasks;
  st.avg_task_ns
    = st.avg_task_ns == 0 ? per_task : 0.7 * st.avg_task_ns + 0.3 * per_task;
  auto target = static_cast<double>(st.opts.target_backlog.count());
  auto wanted = st.avg_task_ns > 0 ? target / st.avg_task_ns : 1e9;
  auto lo = std::min<uint32_t>(2, st.opts.prefetch);
  auto next = static_cast<uint32_t>(std::clamp(
    wanted, static_cast<double>(lo), static_cast<double>(st.opts.prefetch)));
  if (next < st.window * 2 && next * 2 > st.window)
    return;
  st.window = next;
  st.hello.prefetch = next;
  self
    ->request(st.queue, st.opts.reconnect.connect_timeout, tq_join_atom::value,
              st.hello)
    .then([](const caf::actor&) {}, [](const caf::error&) {});
}

void join(worker_ptr self, caf::actor dir) {
  auto& st = self->state;
  st.window = initial_window(st.opts);
  st.hello.prefetch = st.window;
  self
    ->request(dir, st.opts.reconnect.connect_timeout, tq_join_atom::value,
              st.hello)
    .then(
      [=](caf::actor& q) {
        auto& s = self->state;
        s.queue = q;
        self->monitor(q);
        ++s.epoch; // stops the give-up timer
        s.refusals = 0;
        s.refusal.clear();
        s.delays.reset();
        auto& log = troupe::log(self->system());
        if (s.last_failure.empty())
          log.info("worker: joined queue '{}' at {}", s.opts.queue,
                   address(s.opts));
        else
          log.warn("worker: joined queue '{}' at {} after failed attempts",
                   s.opts.queue, address(s.opts));
        s.last_failure.clear();
        emit(self, worker_event::joined, address(s.opts));
      },
      [=](caf::error& err) {
        if (self->state.opts.local_queue
            && err == caf::sec::request_receiver_down) {
          local_queue_gone(self, "before the worker joined");
          return;
        }
        if (err == troupe::errc::closed) {
          troupe::log(self->system())
            .info("worker: {}; leaving", error_text(err));
          emit(self, worker_event::closed, error_text(err));
          self->quit();
          return;
        }
        if (!is_refusal(err))
          err = caf::make_error(troupe::errc::connect_failed,
                                "joining queue '" + self->state.opts.queue
                                  + "' at " + address(self->state.opts)
                                  + " failed: " + error_text(err));
        attempt_failed(self, std::move(err));
      });
}

// Starts a connect attempt; its outcome comes back as a `dial_*` message.
void connect(worker_ptr self) {
  auto& st = self->state;
  emit(self, worker_event::connecting, address(st.opts));
  dial(self->system(), *st.cfg, st.opts.host, st.opts.port,
       st.opts.reconnect.connect_timeout, caf::actor_cast<caf::actor>(self));
}

caf::behavior worker_actor(worker_ptr self, worker_options opts,
                           worker_hello hello, detail::raw_task_fn fn,
                           worker_listener listener, const net_config* cfg) {
  install_log_handlers(self);
  auto& st = self->state;
  st.opts = std::move(opts);
  st.hello = std::move(hello);
  st.fn = std::move(fn);
  st.listener = std::move(listener);
  st.cfg = cfg;
  st.delays = backoff{st.opts.reconnect};
  self->set_down_handler([=](caf::down_msg& msg) {
    auto& s = self->state;
    if (msg.source != s.queue.address())
      return;
    s.queue = nullptr;
    if (s.opts.local_queue) {
      // The queue of this process is gone for good (its last handle was
      // dropped, or the node stops): nothing to reconnect to, and a worker
      // retrying for ever would keep the process alive.
      local_queue_gone(self, self->system().render(msg.reason));
      return;
    }
    s.delays.reset();
    out_of_reach(self);
    attempt_failed(
      self, caf::make_error(troupe::errc::connect_failed,
                            "lost the master at " + address(s.opts) + " ("
                              + self->system().render(msg.reason) + ")"));
  });
  out_of_reach(self);
  self->send(self, reconnect_atom::value);
  return {
    [=](reconnect_atom) {
      auto& s = self->state;
      if (s.queue)
        return;
      if (s.opts.local_queue)
        join(self, s.opts.local_queue);
      else
        connect(self);
    },
    [=](give_up_atom, uint64_t epoch) {
      auto& s = self->state;
      if (epoch != s.epoch || s.queue)
        return;
      auto why = "no master at " + address(s.opts) + " for "
                 + render(s.opts.give_up_after)
                 + " (give_up_after, --give-up-after)";
      if (!s.last_failure.empty())
        why += "; last attempt: " + s.last_failure;
      give_up(self, caf::make_error(troupe::errc::connect_failed, why));
    },
    // The connect attempt reached the master, or failed.
    [=](dial_ok_atom, caf::actor& dir) { join(self, std::move(dir)); },
    [=](dial_empty_atom) {
      attempt_failed(self, caf::make_error(troupe::errc::refused,
                                           address(self->state.opts)
                                             + " is a troupe node but serves "
                                               "no queues"));
    },
    // Whether to try again depends on the code (see dial_failed_atom).
    [=](dial_failed_atom, caf::error& why) {
      attempt_failed(self, std::move(why));
    },
    [=](tq_tasks_atom, std::vector<task_msg>& tasks) {
      auto& s = self->state;
      auto start = std::chrono::steady_clock::now();
      std::vector<result_msg> results;
      results.reserve(tasks.size());
      for (auto& t : tasks) {
        result_msg r;
        r.id = t.id;
        r.attempt = t.attempt;
        auto out = s.fn(t.payload);
        r.ok = static_cast<bool>(out);
        if (out)
          r.payload = std::move(*out);
        else
          r.error = error_text(out.error());
        if (!r.ok)
          troupe::log(self->system())
            .warn("worker: task {} failed: {}", t.id, r.error);
        results.emplace_back(std::move(r));
      }
      // Answer whoever leased the tasks (the queue), even if the join
      // reply has not arrived yet.
      auto to = caf::actor_cast<caf::actor>(self->current_sender());
      if (to)
        self->send(to, tq_results_atom::value, std::move(results));
      adapt_window(self, tasks.size(),
                   std::chrono::steady_clock::now() - start);
    },
    [=](tq_closed_atom) {
      auto rp = self->make_response_promise();
      rp.deliver(caf::unit);
      troupe::log(self->system())
        .info("worker: queue '{}' is closed; leaving", self->state.opts.queue);
      emit(self, worker_event::closed, "");
      self->quit();
    },
  };
}

} // namespace

namespace detail {

caf::actor spawn_raw_worker(node& host, const net_config* cfg,
                            worker_options opts, std::string task_type,
                            std::string result_type, raw_task_fn fn,
                            worker_listener listener) {
  opts.max_refusals = std::max<uint32_t>(opts.max_refusals, 1);
  worker_hello hello;
  hello.queue = opts.queue;
  hello.task_type = std::move(task_type);
  hello.result_type = std::move(result_type);
  hello.node = host.info();
  hello.prefetch = initial_window(opts);
  auto hdl = host.system().spawn<caf::detached>(worker_actor, std::move(opts),
                                                std::move(hello), std::move(fn),
                                                std::move(listener), cfg);
  host.track(hdl.address());
  return hdl;
}

} // namespace detail

caf::error await_worker(node& host, const caf::actor& worker,
                        caf::timespan timeout) {
  if (!worker)
    return caf::make_error(troupe::errc::invalid_option_value,
                           "await_worker: no worker");
  caf::scoped_actor self{host.system()};
  // A worker that already ended answers the monitor at once, with its exit
  // reason.
  self->monitor(worker);
  caf::error result;
  bool done = false;
  self->receive_while([&] { return !done; })(
    [&](caf::down_msg& msg) {
      if (msg.source != worker.address())
        return;
      done = true;
      result = std::move(msg.reason);
    },
    caf::after(timeout) >>
      [&] {
        done = true;
        result = caf::make_error(troupe::errc::timeout,
                                 "the worker still runs after "
                                   + caf::deep_to_string(timeout));
      });
  return result;
}

caf::error await_worker(node& host, const caf::actor& worker) {
  // Long enough to mean "no bound", short enough not to overflow a clock.
  return await_worker(host, worker, std::chrono::hours{24 * 365 * 100});
}

} // namespace troupe::queue
