#pragma once

// The lease bookkeeping of a task queue: the state its queue actor keeps
// (tasks, workers, leases, results, dead letters) and the functions that
// change it, each keeping the invariants of `queue_state`. The actor's
// handlers (queue_actor.cpp) call them; nothing else touches the state.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/timespan.hpp>

#include "troupe/queue/protocol.hpp"
#include "troupe/queue/task_queue.hpp"
#include "troupe/runtime/message_types.hpp"

namespace troupe::queue::detail {

class task_store;

// -- timers the queue actor sends itself
// ----------------------------------------

/// Checks the leases for expired ones (every quarter lease, 10 ms to 1 s).
using tick_atom = caf::atom_constant<caf::atom("tqtick")>;

/// Ends the wait of the `get` with this token, if it still waits.
using get_timeout_atom = caf::atom_constant<caf::atom("tqgettmo")>;

/// Answers the `close` waiters whose workers did not all acknowledge.
using close_timeout_atom = caf::atom_constant<caf::atom("tqclosetmo")>;

/// Ends the retry backoff of a task that failed (its id and attempts).
using retry_atom = caf::atom_constant<caf::atom("tqretry")>;

// -- the state ----------------------------------------------------------------

using clock = std::chrono::steady_clock;

/// The largest window a worker may ask for; more buys no speed and lets one
/// worker hoard the queue.
constexpr uint32_t max_prefetch = 65536;

/// A task without a result yet.
struct task_entry {
  std::vector<char> payload;
  uint32_t attempts = 0;
  /// The worker holding the current lease, 0 if none.
  uint64_t worker = 0;
  /// Whether the task failed and waits out its retry backoff (then it is
  /// neither leased nor ready).
  bool retrying = false;
  std::string last_error;
};

/// A connected worker and the leases it holds.
struct worker_entry {
  caf::actor hdl;
  std::string node;
  uint32_t prefetch = 1;
  /// Tasks whose current lease this worker holds.
  std::unordered_set<uint64_t> leased;
  /// Tasks whose lease expired at this worker and that it has not answered:
  /// it is still busy with them, so they still take room in its window.
  std::unordered_set<uint64_t> expired;

  /// Returns how many more tasks the worker's window takes.
  size_t room() const {
    auto used = leased.size() + expired.size();
    return used < prefetch ? prefetch - used : 0;
  }
};

/// One delivery; `queue_state::leases` holds them in delivery order, which
/// is also the order of their deadlines (all leases have the same length).
struct lease_mark {
  clock::time_point deadline;
  uint64_t id;
  uint32_t attempt;
};

/// A `get` waiting for results.
struct getter {
  caf::response_promise promise;
  size_t max;
  uint64_t token;
};

/// State of a queue actor.
///
/// Invariants:
/// (1) A task is in `tasks` until it has its result; its id is then at most
///     `last_id` and absent from `tasks`, which is how duplicates are found.
/// (2) An id is in `ready` iff its entry has `worker == 0` and is not
///     `retrying`; with `worker != 0` it is in the `leased` set of exactly
///     that worker; `retrying` counts the entries that are.
/// (3) Results wait in `results` only while no getter waits (and vice versa).
struct queue_state {
  queue_options opts;
  std::string task_type;
  std::string result_type;
  /// The master node, whose registry each worker must match.
  node_info local;
  std::shared_ptr<task_store> store;

  std::unordered_map<uint64_t, task_entry> tasks;
  /// The ids of keyed tasks by key, without a store (the store keeps them
  /// otherwise).
  std::unordered_map<std::string, uint64_t> keys;
  std::deque<uint64_t> ready;
  std::map<uint64_t, worker_entry> workers;
  std::unordered_map<caf::actor_addr, uint64_t> worker_ids;
  uint64_t next_worker = 0;
  std::deque<lease_mark> leases;
  std::deque<raw_result> results;
  std::deque<getter> getters;
  std::vector<dead_letter> dead;
  uint64_t retrying = 0;
  /// Draws the jitter of retry backoffs.
  std::minstd_rand rng{std::random_device{}()};
  uint64_t last_id = 0;
  uint64_t next_token = 0;
  bool closed = false;
  /// Workers that went down (not left) and have not joined since, and
  /// whether the queue resumed from its store (workers of the previous
  /// master may come back): they may have missed the close, so a `close`
  /// waits its whole timeout for them (see `close_may_finish`).
  std::unordered_set<caf::actor_addr> missing;
  bool resumed = false;
  bool workers_told = false;
  size_t close_acks = 0;
  std::vector<caf::response_promise> close_waiters;
  queue_stats stats;

  static inline const char* name = "troupe.task_queue";
};

using queue_ptr = caf::stateful_actor<queue_state>*;

// -- changing the state
// ---------------------------------------------------------

/// Returns whether every task has its result.
inline bool drained(const queue_state& st) {
  return st.tasks.empty();
}

/// Commits the store, if any; on failure logs and returns the error
/// (`errc::store_failed`).
[[nodiscard]] caf::error commit(queue_ptr self);

/// Answers every `close` waiter.
void finish_close(queue_ptr self);

/// Returns whether `close` waiters may be answered before their timeout:
/// every worker told acknowledged, and no worker may have missed the close
/// (no missing worker, not resumed from a store).
inline bool close_may_finish(const queue_state& st) {
  return st.close_acks == 0 && st.missing.empty() && !st.resumed;
}

/// Tells every worker that the queue is closed and drained; close waiters
/// are answered once all of them acknowledged (or after `timeout`).
void tell_workers(queue_ptr self, caf::timespan timeout);

/// Hands waiting results to waiting getters (invariant 3); tells the getters
/// of a closed, drained and emptied queue that it is closed.
void answer_getters(queue_ptr self);

/// Returns `troupe::errc::closed` once the queue is closed (no more `put`).
[[nodiscard]] caf::error check_open(queue_ptr self);

/// Adds a task with `payload` (moved from), under `key` if not empty: a key
/// that a task already has adds nothing and returns that task's id with
/// `added` false (the store keeps the keys; without one, `keys` does).
/// Returns id 0 if the store failed to write (the next commit says why).
put_receipt add_task(queue_ptr self, std::vector<char>& payload,
                     const std::string& key);

/// Records the one result of task `id` (invariant 1); a failed one goes to
/// the dead-letter list.
void complete(queue_ptr self, uint64_t id, task_entry& entry, bool ok,
              std::vector<char> payload, std::string error);

/// Ends the current lease of `id` without a result: back to the queue (after
/// the retry backoff if the task `failed`, at once if the lease was lost),
/// or to the dead-letter list after `max_attempts`.
void lease_failed(queue_ptr self, uint64_t id, task_entry& entry,
                  std::string why, bool failed = false);

/// Ends the retry backoff of task `id` (if it still waits for `attempt`).
void retry(queue_ptr self, uint64_t id, uint32_t attempt);

/// Leases ready tasks to the workers with room in their windows.
void dispatch(queue_ptr self);

/// Called after every change: commits, hands out results and tasks, and
/// tells the workers once a closed queue has drained. Returns the error of
/// the commit, which it logged.
caf::error settle(queue_ptr self);

/// Records that the application is done with these results (`task_done`):
/// a restarted durable queue does not hand them out again.
[[nodiscard]] caf::error acknowledge(queue_ptr self,
                                     const std::vector<uint64_t>& ids);

/// Redelivers the tasks whose lease expired.
void expire_leases(queue_ptr self);

/// Redelivers the tasks of the worker at `addr`, which went down.
void worker_lost(queue_ptr self, const caf::actor_addr& addr,
                 const caf::error& reason);

} // namespace troupe::queue::detail
