#pragma once

// The queue actor of a task queue: its private atoms and the function that
// returns its behavior. queue_core (task_queue.cpp) spawns it and talks to it
// with `blocking_request`; workers reach it through the directory actor
// (directory.cpp) and then talk to it directly.

#include <memory>
#include <string>
#include <tuple>

#include <caf/atom.hpp>
#include <caf/behavior.hpp>

#include "troupe/queue/task_queue.hpp"
#include "troupe/runtime/message_types.hpp"

#include "queue_state.hpp"

namespace troupe::queue::detail {

struct store_contents;

/// Asks a queue actor for its `queue_stats`.
using stats_atom = caf::atom_constant<caf::atom("tqstats")>;

/// Asks a queue actor for its dead-letter list.
using dead_atom = caf::atom_constant<caf::atom("tqdead")>;

/// The reply to `stats_atom`: the fields of `queue_stats` in declaration
/// order, `workers` and `workers_seen` widened to `uint64_t` (`queue_stats`
/// itself is no registered message type).
using stats_reply
  = std::tuple<uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
               uint64_t, uint64_t, uint64_t, uint64_t, uint64_t>;

/// Returns the behavior of a queue actor serving `opts.name`; spawn it with
/// `host.spawn(queue_actor, ...)`. With a store, `contents` is what the store
/// held when it was opened and the actor starts from it. Besides the worker
/// protocol of protocol.hpp (`tq_join_atom`, `tq_results_atom`; it sends
/// `tq_tasks_atom` and `tq_closed_atom`), the actor accepts:
/// - `(caf::put_atom, std::vector<std::vector<char>> payloads)
///   -> std::vector<uint64_t>`: adds the tasks; replies with their ids once
///   they are committed; `troupe::errc::closed` after `close`.
/// - `(caf::put_atom, std::vector<std::vector<char>> payloads,
///   std::vector<std::string> keys) -> std::vector<put_receipt>`: as above,
///   but adds only the tasks whose key no task had (by the store, or by the
///   actor's own map without one).
/// - `(caf::get_atom, uint64_t max, caf::timespan wait,
///   std::vector<uint64_t> acks) -> std::vector<raw_result>`: acknowledges
///   `acks`, then replies with 1 to `max` results as soon as there are any;
///   `troupe::errc::timeout` after `wait`, `troupe::errc::closed` once the
///   queue is closed and every result was taken.
/// - `(caf::close_atom, caf::timespan timeout, std::vector<uint64_t> acks)
///   -> caf::unit`: acknowledges `acks` and closes the queue; replies at
///   once if tasks remain, else once the workers acknowledged the close (at
///   most after `timeout`).
/// - `(stats_atom) -> stats_reply`, `(dead_atom) -> std::vector<dead_letter>`.
/// - `(caf::get_atom) -> std::string`: the queue's name.
/// It monitors each worker and redelivers the tasks of those that go down.
caf::behavior queue_actor(queue_ptr self, queue_options opts,
                          std::string task_type, std::string result_type,
                          node_info local, std::shared_ptr<task_store> store,
                          std::shared_ptr<store_contents> contents);

} // namespace troupe::queue::detail
