// The worker side of the task queue: connects to a master, joins a queue,
// runs leased tasks and answers them, and reconnects when the master goes.

#include <algorithm>
#include <chrono>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
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

struct worker_state {
  worker_options opts;
  worker_hello hello;
  detail::raw_task_fn fn;
  worker_listener listener;
  const net_config* cfg = nullptr;
  caf::actor queue;
  backoff delays;
  uint32_t failures = 0;
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

// Ends a worker whose local queue has stopped (`why`): it cannot come back.
void local_queue_gone(worker_ptr self, const std::string& why) {
  auto text = address(self->state.opts) + " stopped (" + why + ")";
  troupe::log(self->system()).info("worker: {}; leaving", text);
  emit(self, worker_event::closed, text);
  self->quit();
}

// Schedules the next connect attempt after a failure described by `why`.
void retry(worker_ptr self, const std::string& why) {
  auto& st = self->state;
  ++st.failures;
  // A program with a listener reports it itself.
  troupe::log(self->system())
    .log(st.listener ? spdlog::level::debug : spdlog::level::warn, "worker: {}",
         why);
  if (st.opts.max_connect_attempts > 0
      && st.failures >= st.opts.max_connect_attempts) {
    emit(self, worker_event::failed, why);
    self->quit(caf::make_error(troupe::errc::connect_failed, why));
    return;
  }
  emit(self, worker_event::disconnected, why);
  self->delayed_send(self, st.delays.next(), reconnect_atom::value);
}

bool fatal(const caf::error& err) {
  return err == troupe::errc::type_mismatch
         || err == troupe::errc::registry_mismatch || err == errc::no_such_queue
         || err == troupe::errc::invalid_option_value
         || err == troupe::errc::closed;
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
        s.failures = 0;
        s.delays.reset();
        troupe::log(self->system())
          .info("worker: joined queue '{}' at {}", s.opts.queue,
                address(s.opts));
        emit(self, worker_event::joined, address(s.opts));
      },
      [=](caf::error& err) {
        if (self->state.opts.local_queue
            && err == caf::sec::request_receiver_down) {
          local_queue_gone(self, "before the worker joined");
          return;
        }
        if (fatal(err)) {
          auto text = error_text(err);
          if (err == troupe::errc::closed) {
            emit(self, worker_event::closed, text);
            self->quit();
            return;
          }
          emit(self, worker_event::failed, text);
          self->quit(err);
          return;
        }
        retry(self, "joining queue '" + self->state.opts.queue + "' at "
                      + address(self->state.opts)
                      + " failed: " + error_text(err));
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
    retry(self, "lost the master at " + address(s.opts) + " ("
                  + self->system().render(msg.reason) + "); reconnecting");
  });
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
    // The connect attempt reached the master, or failed.
    [=](dial_ok_atom, caf::actor& dir) { join(self, std::move(dir)); },
    [=](dial_empty_atom) {
      retry(self,
            address(self->state.opts) + " is a CAF node but serves no queues");
    },
    // A refused handshake (wrong key or certificate) will not heal by
    // itself, but the master may be restarted with the right key: retry, and
    // let max_connect_attempts bound it.
    [=](dial_failed_atom, const caf::error& why) {
      retry(self, error_text(why));
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

} // namespace troupe::queue
