#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/timespan.hpp>

#include "troupe/queue/errc.hpp"
#include "troupe/queue/fwd.hpp"
#include "troupe/queue/protocol.hpp"
#include "troupe/runtime/dialer.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/fwd.hpp"
#include "troupe/runtime/payload.hpp"

namespace troupe::queue {

// -- options and figures ------------------------------------------------------

/// How a master's queue behaves.
struct queue_options {
  /// The name workers ask for.
  std::string name = "tasks";
  /// SQLite file that holds the queue (durable mode); empty: in memory.
  std::string store;
  /// How long a worker may hold a task before it goes to another worker.
  caf::timespan lease = std::chrono::seconds{30};
  /// Deliveries of one task before it goes to the dead-letter list.
  uint32_t max_attempts = 3;
  /// How long a task that failed (its function threw or returned an error)
  /// waits before it is offered again: `retry_backoff` after the first
  /// failure, doubling with each further one up to `retry_backoff_max`, each
  /// wait drawn at random between half and all of that (jitter), so that
  /// tasks that failed together do not all come back at once. Zero: retry at
  /// once. A lease that expires or a worker that is lost does not count as
  /// the task failing: its tasks go to other workers at once. A restarted
  /// durable queue offers waiting tasks at once.
  caf::timespan retry_backoff = std::chrono::seconds{1};
  caf::timespan retry_backoff_max = std::chrono::seconds{60};
};

/// What a queue has done so far (`task_queue::stats`).
struct queue_stats {
  /// Tasks put (in this process).
  uint64_t put = 0;
  /// Leases handed out, and how many of those were second or later tries.
  uint64_t delivered = 0;
  uint64_t redelivered = 0;
  /// Results accepted (one per task), of which dead-lettered.
  uint64_t results = 0;
  uint64_t dead = 0;
  /// Results dropped because the task already had one.
  uint64_t duplicates = 0;
  /// Tasks waiting for a worker, tasks out on lease, and tasks that failed
  /// and wait out their retry backoff.
  uint64_t pending = 0;
  uint64_t leased = 0;
  uint64_t retrying = 0;
  /// Workers connected now, and ever.
  uint32_t workers = 0;
  uint32_t workers_seen = 0;
};

/// What a durable queue found in its store when it started.
struct queue_resume {
  /// Tasks in the store (ever put), results the application already took,
  /// tasks still without a result.
  uint64_t tasks = 0;
  uint64_t consumed = 0;
  uint64_t pending = 0;
  /// Whether the queue had been closed.
  bool closed = false;
};

/// What a keyed `put` did: the task's id, and whether this put added it
/// (false: a task with that key was already stored, under this id).
struct put_receipt {
  uint64_t id = 0;
  bool added = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, put_receipt& x) {
  return f(caf::meta::type_name("troupe.put_receipt"), x.id, x.added);
}

/// A task that went to the dead-letter list.
struct dead_letter {
  uint64_t id = 0;
  uint32_t attempts = 0;
  std::string error;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, dead_letter& x) {
  return f(caf::meta::type_name("troupe.dead_letter"), x.id, x.attempts,
           x.error);
}

namespace detail {

/// A result as the queue actor hands it to the application: the message a
/// worker answered with, whose `attempt` is the delivery that produced it.
/// @private
using raw_result = troupe::queue::result_msg;

/// The type-erased master side of a queue: owns the queue actor. @private
class queue_core {
public:
  queue_core(const queue_core&) = delete;
  queue_core& operator=(const queue_core&) = delete;

  [[nodiscard]] static caf::expected<std::shared_ptr<queue_core>>
  create(node& host, queue_options opts, std::string task_type,
         std::string result_type);

  ~queue_core();

  [[nodiscard]] caf::expected<std::vector<uint64_t>>
  put(std::vector<std::vector<char>> payloads);

  /// Puts the tasks whose key is not stored yet (`keys[i]` for
  /// `payloads[i]`, none empty).
  [[nodiscard]] caf::expected<std::vector<put_receipt>>
  put(std::vector<std::vector<char>> payloads, std::vector<std::string> keys);

  /// Acknowledges `acks` (see `task_queue::task_done`), then waits up to
  /// `timeout` for at least one result; returns up to `max`.
  [[nodiscard]] caf::expected<std::vector<raw_result>>
  get(size_t max, caf::timespan timeout, std::vector<uint64_t> acks);

  [[nodiscard]] caf::error close(caf::timespan timeout,
                                 std::vector<uint64_t> acks);

  /// Returns the queue's figures; all zero if its actor does not answer.
  queue_stats stats();

  /// Returns the dead-letter list; empty if the queue's actor does not
  /// answer.
  std::vector<dead_letter> dead_letters();

  const caf::actor& actor() const noexcept {
    return actor_;
  }

  const std::string& name() const noexcept {
    return name_;
  }

  const queue_resume& resumed() const noexcept {
    return resumed_;
  }

private:
  queue_core(node& host, caf::actor hdl, std::string name, queue_resume r);

  node& host_;
  caf::actor actor_;
  std::string name_;
  queue_resume resumed_;
};

/// The work a worker does, type-erased: decodes a task, runs it, encodes
/// the result; `errc::job_failed` saying why if the task failed. @private
using raw_task_fn
  = std::function<caf::expected<std::vector<char>>(const std::vector<char>&)>;

} // namespace detail

// -- master side --------------------------------------------------------------

/// A result as the master receives it: the task's id, how many deliveries
/// it took, and the value or the error that sent it to the dead-letter list.
template <class Result>
struct task_result {
  uint64_t id = 0;
  uint32_t attempts = 0;
  caf::expected<Result> value = caf::error{};
};

/// The master's handle to a named task queue of `Task`s that yields
/// `Result`s: Python's `task_queue.put` and `result_queue.get`, done so that
/// nothing is lost. Workers (see `spawn_worker`) connect to it over the
/// network once it is served (`serve_queues`).
///
/// Every delivery to a worker is a lease: a result acknowledges it; a worker
/// that dies, disconnects or overruns the lease gets its tasks redelivered.
/// Each task yields exactly one result (later duplicates are dropped); a
/// task that failed `max_attempts` times yields an error result and goes to
/// the dead-letter list. With `queue_options::store` the queue lives in
/// SQLite and a restarted master resumes it: `put` returns only once the
/// tasks are committed, a result is committed before `get` returns it, and
/// results whose acknowledgement (`task_done`) was not committed are
/// returned again after a restart (at least once to the application,
/// exactly once in the store). Acknowledgements are committed with the next
/// `get` that fetches from the queue (it fetches up to 1024 results at a
/// time) or with `close`: a master killed without warning gets back at most
/// the 1024 results it took last. Keyed puts (`put(task, key)`) make putting
/// idempotent, so a restarted program can put all its tasks again.
///
/// Thread-safe: all member functions may be called from any thread. The
/// queue actor lives as long as a copy of this handle does: when the last
/// one is gone (or the node stops), the queue stops, and so does the
/// `serve_queues` directory once all of its queues have stopped. So a
/// program that returns from `troupe::run`'s function with no handle left
/// exits; a master keeps its handle for as long as it serves workers.
template <class Task, class Result>
class task_queue {
public:
  /// Creates the queue on `host`. Fails with `errc::store_failed` if the
  /// store cannot be opened or belongs to another queue.
  [[nodiscard]] static caf::expected<task_queue> create(node& host,
                                                        queue_options opts) {
    auto core = detail::queue_core::create(host, std::move(opts),
                                           troupe::type_name<Task>(),
                                           troupe::type_name<Result>());
    if (!core)
      return std::move(core.error());
    return task_queue{std::move(*core)};
  }

  /// Adds a task; returns its id.
  [[nodiscard]] caf::expected<uint64_t> put(const Task& task) {
    auto ids = put_all({task});
    if (!ids)
      return std::move(ids.error());
    return ids->front();
  }

  /// Adds several tasks in one step (one commit in durable mode); returns
  /// their ids in order.
  [[nodiscard]] caf::expected<std::vector<uint64_t>>
  put_all(const std::vector<Task>& xs) {
    return core_->put(encode(xs));
  }

  /// Adds a task under `key`, the application's own id of it (as Celery's
  /// task_id or a NATS Msg-Id), unless a task with that key was put before:
  /// then it stores nothing and returns that task's id with `added` false.
  /// A key is remembered for the life of the queue (with a store: for good,
  /// across restarts), so a program that puts its tasks again after a crash
  /// adds only the ones that were missing, and each task yields one result.
  /// Fails with `troupe::errc::invalid_option_value` for an empty key.
  [[nodiscard]] caf::expected<put_receipt> put(const Task& task,
                                               std::string key) {
    auto rs = put_all({task}, {std::move(key)});
    if (!rs)
      return std::move(rs.error());
    return rs->front();
  }

  /// Keyed `put` of several tasks in one step (one commit in durable mode):
  /// `keys[i]` is the key of `xs[i]`; a key given twice adds one task.
  [[nodiscard]] caf::expected<std::vector<put_receipt>>
  put_all(const std::vector<Task>& xs, std::vector<std::string> keys) {
    if (keys.size() != xs.size())
      return caf::make_error(troupe::errc::invalid_option_value,
                             "put_all: " + std::to_string(xs.size())
                               + " tasks but " + std::to_string(keys.size())
                               + " keys");
    return core_->put(encode(xs), std::move(keys));
  }

  /// Returns the next result, waiting up to `timeout`; `troupe::errc::timeout`
  /// if none arrived in time, `troupe::errc::closed` if the queue is closed and
  /// every result was taken.
  [[nodiscard]] caf::expected<task_result<Result>> get(caf::timespan timeout) {
    auto& r = *reader_;
    std::unique_lock<std::mutex> guard{r.mtx};
    if (r.pos == r.buffer.size()) {
      r.buffer.clear();
      r.pos = 0;
      auto acks = std::move(r.acks);
      r.acks.clear();
      auto got = core_->get(fetch_batch, timeout, acks);
      if (!got) {
        // Keep the acknowledgements for the next call.
        r.acks.insert(r.acks.end(), acks.begin(), acks.end());
        return std::move(got.error());
      }
      r.buffer = std::move(*got);
    }
    return decode(r.buffer[r.pos++]);
  }

  /// Tells the queue that the application is done with result `id` (as
  /// Python's `task_done`). In durable mode a restarted master hands out
  /// every result not acknowledged this way again, so a result is lost
  /// neither when the application crashes before handling it nor when the
  /// master does. Acknowledgements travel with the next `get` or `close`.
  void task_done(uint64_t id) {
    auto& r = *reader_;
    std::unique_lock<std::mutex> guard{r.mtx};
    r.acks.push_back(id);
  }

  /// Closes the queue: no more `put`; once every task has its result the
  /// workers are told to leave. If the queue is already drained, waits up to
  /// `timeout` for connected workers to acknowledge that; and if workers may
  /// have missed it (one went down and has not come back, or the queue
  /// resumed from its store, whose previous master had workers), waits the
  /// whole `timeout`, so that those reconnecting meanwhile are told the
  /// queue is closed and leave. A `timeout` above the workers' longest
  /// reconnect delay (2 s by default) catches every worker that is retrying.
  [[nodiscard]] caf::error close(caf::timespan timeout
                                 = std::chrono::seconds{2}) {
    auto& r = *reader_;
    std::unique_lock<std::mutex> guard{r.mtx};
    auto acks = std::move(r.acks);
    r.acks.clear();
    return core_->close(timeout, std::move(acks));
  }

  /// Returns what the queue has done so far; all zero if the queue actor is
  /// gone (stopped with its node).
  queue_stats stats() {
    return core_->stats();
  }

  /// Returns the tasks that went to the dead-letter list (in durable mode,
  /// those of earlier runs too); empty if the queue actor is gone.
  std::vector<dead_letter> dead_letters() {
    return core_->dead_letters();
  }

  /// What the store held when the queue started (all zero in memory mode).
  const queue_resume& resumed() const noexcept {
    return core_->resumed();
  }

  const std::string& name() const noexcept {
    return core_->name();
  }

  /// The queue actor, for `serve_queues`.
  const caf::actor& actor() const noexcept {
    return core_->actor();
  }

  /// How many results `get` fetches from the queue actor at a time, and so
  /// the most acknowledgements that wait to be committed.
  static constexpr size_t fetch_batch = 1024;

private:
  explicit task_queue(std::shared_ptr<detail::queue_core> core)
      : core_(std::move(core)), reader_(std::make_shared<reader>()) {}

  // Results fetched in one batch and not yet returned by `get`.
  struct reader {
    std::mutex mtx;
    std::vector<detail::raw_result> buffer;
    size_t pos = 0;
    std::vector<uint64_t> acks;
  };

  static std::vector<std::vector<char>> encode(const std::vector<Task>& xs) {
    std::vector<std::vector<char>> payloads;
    payloads.reserve(xs.size());
    for (auto& x : xs)
      payloads.emplace_back(troupe::to_bytes(x));
    return payloads;
  }

  static task_result<Result> decode(detail::raw_result& x) {
    task_result<Result> result;
    result.id = x.id;
    result.attempts = x.attempt;
    if (!x.ok) {
      result.value = caf::make_error(troupe::errc::job_failed, x.error);
      return result;
    }
    Result value{};
    if (auto err = troupe::from_bytes(x.payload, value))
      result.value = caf::make_error(troupe::errc::type_mismatch,
                                     "cannot decode the result of task "
                                       + std::to_string(x.id));
    else
      result.value = std::move(value);
    return result;
  }

  std::shared_ptr<detail::queue_core> core_;
  std::shared_ptr<reader> reader_;
};

/// Publishes the queues at `cfg.bind:port` (port 0: the OS chooses), over
/// TLS if `cfg.tls()`, so that workers can join them by name. Returns the
/// port.
[[nodiscard]] caf::expected<uint16_t>
serve_queues(node& host, const net_config& cfg, uint16_t port,
             const std::vector<caf::actor>& queues);

// -- worker side
// ----------------------------------------------------------------

/// Where a worker finds its queue and how it takes tasks.
struct worker_options {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string queue = "tasks";
  /// The credit window: at most this many tasks may be out at the worker
  /// (sent by the master and not yet answered).
  uint32_t prefetch = 1024;
  /// Sizes the window by how long tasks take: it starts at 2 and is then
  /// kept near `target_backlog` worth of work (between 2 and `prefetch`), so
  /// that fast tasks travel in large batches while slow ones are not hoarded
  /// by one worker while others idle. False: always `prefetch`.
  bool adaptive = true;
  caf::timespan target_backlog = std::chrono::milliseconds{50};
  /// Bound of one connection attempt (2 s, also the bound of the join that
  /// follows it), and reconnect delays doubling from 100 ms up to 2 s.
  reconnect_options reconnect{std::chrono::seconds{2},
                              std::chrono::milliseconds{100},
                              std::chrono::seconds{2}};
  /// Give up after this many refusals for the same reason with no join in
  /// between, of the kind that retrying does not cure: the master or its gate
  /// turned the worker away (another cluster key or cookie, a certificate,
  /// other task or result types, another message registry, no such queue). At
  /// least 1. Other failures (connection refused, a timeout, a reset, `busy`)
  /// are retried with backoff; `give_up_after` bounds them.
  uint32_t max_refusals = 3;
  /// Give up when no join has succeeded for this long: since the worker
  /// started, or since it lost its master (0: never).
  caf::timespan give_up_after = std::chrono::minutes{5};
  /// A queue actor on this node (`task_queue::actor()`) to join directly,
  /// without the network; `host` and `port` are then ignored.
  caf::actor local_queue;
};

/// What happens to a worker, for programs that report it. The worker logs
/// each of these itself too (a change of the failure's reason at warning
/// level, a refusal and the end at error level), listener or not.
enum class worker_event {
  /// About to connect (text: `HOST:PORT`).
  connecting,
  /// Joined the queue (text: `HOST:PORT`).
  joined,
  /// Lost the master, could not reach it, or was refused by it; will retry
  /// (text: why).
  disconnected,
  /// The master closed the queue; the worker leaves.
  closed,
  /// The worker gives up (text: why): refused `max_refusals` times in a row,
  /// or no join for `give_up_after`.
  failed,
};

using worker_listener = std::function<void(worker_event, const std::string&)>;

namespace detail {

caf::actor spawn_raw_worker(node& host, const net_config* cfg,
                            worker_options opts, std::string task_type,
                            std::string result_type, raw_task_fn fn,
                            worker_listener listener);

} // namespace detail

namespace detail {

template <class Task, class Result, class F>
raw_task_fn make_raw_task_fn(F fn) {
  return
    [fn = std::move(fn)](
      const std::vector<char>& in) mutable -> caf::expected<std::vector<char>> {
      Task task{};
      if (auto err = troupe::from_bytes(in, task))
        return caf::make_error(troupe::errc::job_failed,
                               "cannot decode the task");
      try {
        return troupe::to_bytes<Result>(fn(task));
      } catch (const std::exception& ex) {
        return caf::make_error(troupe::errc::job_failed, ex.what());
      } catch (...) {
        return caf::make_error(troupe::errc::job_failed, "unknown exception");
      }
    };
}

} // namespace detail

/// Spawns a worker that joins `opts.queue` at `opts.host:opts.port` and runs
/// `fn(const Task&) -> Result` on each task, on a thread of its own (tasks
/// may block). A task that throws comes back to the master as an error
/// carrying the exception's `what()`, and the worker carries on. The worker
/// reconnects with backoff whenever it loses the master, and exits normally
/// when the master closes the queue. It exits with an error, logged at error
/// level, if the master refuses it `opts.max_refusals` times in a row for
/// the same reason (wrong key, certificate, types, queue name), or if no
/// join succeeded for `opts.give_up_after`. `listener` (optional) hears
/// about connects, losses and the end.
///
/// The returned actor is a top-level actor of `host`; `await_worker` waits
/// for it and returns why it ended.
template <class Task, class Result, class F>
caf::actor spawn_worker(node& host, const net_config& cfg, worker_options opts,
                        F fn, worker_listener listener = {}) {
  return detail::spawn_raw_worker(
    host, &cfg, std::move(opts), troupe::type_name<Task>(),
    troupe::type_name<Result>(),
    detail::make_raw_task_fn<Task, Result>(std::move(fn)), std::move(listener));
}

/// Waits until `worker` (from `spawn_worker` or `spawn_local_worker`) has
/// ended and returns why: none if it left because its queue was closed (its
/// work is done), otherwise the error it ended with, e.g. `troupe::errc::
/// refused`, `type_mismatch`, `registry_mismatch` or `errc::no_such_queue`
/// (the master refused it), `troupe::errc::connect_failed` (no master within
/// `give_up_after`), or the exit reason its node stopped it with. Returns
/// `troupe::errc::timeout` if the worker still runs after `timeout`.
/// Blocking: call it from a thread that is not an actor's.
[[nodiscard]] caf::error await_worker(node& host, const caf::actor& worker,
                                      caf::timespan timeout);

/// As `await_worker(host, worker, timeout)`, without a bound.
[[nodiscard]] caf::error await_worker(node& host, const caf::actor& worker);

/// Spawns a worker for a queue of this node, without the network (e.g. a
/// master that also works, or tests). Otherwise like `spawn_worker`, except
/// that it leaves (`worker_event::closed`) once the queue has stopped, e.g.
/// when the last handle to it is gone: it has nothing to reconnect to.
template <class Task, class Result, class F>
caf::actor spawn_local_worker(node& host, const task_queue<Task, Result>& q,
                              F fn, uint32_t prefetch = 1024,
                              worker_listener listener = {}) {
  worker_options opts;
  opts.queue = q.name();
  opts.prefetch = prefetch;
  opts.local_queue = q.actor();
  return detail::spawn_raw_worker(
    host, nullptr, std::move(opts), troupe::type_name<Task>(),
    troupe::type_name<Result>(),
    detail::make_raw_task_fn<Task, Result>(std::move(fn)), std::move(listener));
}

} // namespace troupe::queue
