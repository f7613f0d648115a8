#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include "troupe/runtime/message_types.hpp"
#include "troupe/runtime/payload.hpp"

namespace troupe::queue {

/// The messages a task-queue master and its workers exchange. They cross
/// process boundaries, so `troupe::queue::add_message_types` registers them
/// with every `troupe::config`. Payloads are the tasks' and results' own
/// types serialized with CAF's binary serializer, so the master can store
/// them without knowing those types.
///
/// The protocol, between a worker actor `W` and the master's queue actor `Q`
/// (found through the directory actor `D` published at the master's port):
/// - `W -> D: (tq_join_atom, worker_hello) -> caf::actor`: join queue
///   `hello.queue`; the reply is `Q`, or an error (no such queue, types or
///   registry differ, queue closed). `Q` then monitors `W`.
/// - `Q -> W: (tq_tasks_atom, std::vector<task_msg>)`: a batch of leases;
///   `Q` never has more than `hello.prefetch` unanswered tasks at `W`.
/// - `W -> Q: (tq_results_atom, std::vector<result_msg>)`: results; each
///   ends a lease and frees a slot of `W`'s window.
/// - `Q -> W: (tq_closed_atom) -> caf::unit`: the queue is closed and drained;
///   `W` answers, then leaves.
using tq_join_atom = caf::atom_constant<caf::atom("tqjoin")>;
using tq_tasks_atom = caf::atom_constant<caf::atom("tqtasks")>;
using tq_results_atom = caf::atom_constant<caf::atom("tqresults")>;
using tq_closed_atom = caf::atom_constant<caf::atom("tqclosed")>;

/// What a worker says when it joins a queue.
struct worker_hello {
  /// The queue's name.
  std::string queue;
  /// Names of the task and result types the worker was built for; the master
  /// refuses a worker whose types differ from the queue's.
  std::string task_type;
  std::string result_type;
  /// The worker node's name and message registry; the master refuses a
  /// worker whose registry differs from its own, naming the types that
  /// differ.
  node_info node;
  /// How many unanswered tasks the worker takes at once (its credit window).
  uint32_t prefetch = 64;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_hello& x) {
  return f(caf::meta::type_name("troupe.worker_hello"), x.queue, x.task_type,
           x.result_type, x.node, x.prefetch);
}

/// One leased task: its id, which delivery of it this is (1 for the first),
/// and the serialized task.
struct task_msg {
  uint64_t id = 0;
  uint32_t attempt = 0;
  std::vector<char> payload;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_msg& x) {
  return f(caf::meta::type_name("troupe.task_msg"), x.id, x.attempt,
           bytes_field{x.payload});
}

/// The outcome of one lease: the serialized result if `ok`, otherwise the
/// error (e.g. what the task function threw).
struct result_msg {
  uint64_t id = 0;
  uint32_t attempt = 0;
  bool ok = true;
  std::vector<char> payload;
  std::string error;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, result_msg& x) {
  return f(caf::meta::type_name("troupe.result_msg"), x.id, x.attempt, x.ok,
           bytes_field{x.payload}, x.error);
}

} // namespace troupe::queue
