// The master's handle of a task queue: `queue_core`, the type-erased part
// of `task_queue<Task, Result>`, which opens the store, spawns the queue actor
// (queue_actor.cpp) and turns `put`, `get`, `close`, `stats` and
// `dead_letters` into blocking requests to it.

#include "troupe/queue/task_queue.hpp"

#include <chrono>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

#include "troupe/runtime/blocking_request.hpp"
#include "troupe/runtime/node.hpp"

#include "queue_actor.hpp"
#include "task_store.hpp"

namespace troupe::queue {

namespace detail {

queue_core::queue_core(node& host, caf::actor hdl, std::string name,
                       queue_resume r)
    : host_(host), actor_(std::move(hdl)), name_(std::move(name)), resumed_(r) {
}

queue_core::~queue_core() {
  // The last handle is gone: nobody can take results any more, so the queue
  // stops (and with it the directory serving it). Its periodic tick would
  // otherwise keep it, and troupe::run with it, alive for ever.
  caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown);
}

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
    resumed.tasks = contents->tasks;
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
  return blocking_request<std::vector<uint64_t>>(
    host_.system(), actor_, std::chrono::seconds{30}, caf::put_atom::value,
    std::move(payloads));
}

caf::expected<std::vector<put_receipt>>
queue_core::put(std::vector<std::vector<char>> payloads,
                std::vector<std::string> keys) {
  for (auto& key : keys)
    if (key.empty())
      return caf::make_error(troupe::errc::invalid_option_value,
                             "put: a task key must not be empty");
  return blocking_request<std::vector<put_receipt>>(
    host_.system(), actor_, std::chrono::seconds{30}, caf::put_atom::value,
    std::move(payloads), std::move(keys));
}

caf::expected<std::vector<raw_result>>
queue_core::get(size_t max, caf::timespan timeout, std::vector<uint64_t> acks) {
  // The queue answers at `timeout`; the request's own timeout only guards
  // against a queue that is gone.
  return blocking_request<std::vector<raw_result>>(
    host_.system(), actor_, timeout + std::chrono::seconds{5},
    caf::get_atom::value, static_cast<uint64_t>(max), timeout, std::move(acks));
}

caf::error queue_core::close(caf::timespan timeout,
                             std::vector<uint64_t> acks) {
  // As for `get`: the queue answers within `timeout`.
  return blocking_request<void>(
    host_.system(), actor_, timeout + std::chrono::seconds{5},
    caf::close_atom::value, timeout, std::move(acks));
}

queue_stats queue_core::stats() {
  // A queue that does not answer (gone with its node) has no figures: all
  // zero, as `task_queue::stats` documents.
  queue_stats result;
  auto reply = blocking_request<stats_reply>(
    host_.system(), actor_, std::chrono::seconds{10}, stats_atom::value);
  if (!reply)
    return result;
  auto [put, delivered, redelivered, results, dead, duplicates, pending, leased,
        retrying, workers, workers_seen]
    = *reply;
  result.put = put;
  result.delivered = delivered;
  result.redelivered = redelivered;
  result.results = results;
  result.dead = dead;
  result.duplicates = duplicates;
  result.pending = pending;
  result.leased = leased;
  result.retrying = retrying;
  result.workers = static_cast<uint32_t>(workers);
  result.workers_seen = static_cast<uint32_t>(workers_seen);
  return result;
}

std::vector<dead_letter> queue_core::dead_letters() {
  // As for `stats`: empty if the queue does not answer.
  auto reply = blocking_request<std::vector<dead_letter>>(
    host_.system(), actor_, std::chrono::seconds{10}, dead_atom::value);
  if (!reply)
    return {};
  return std::move(*reply);
}

} // namespace detail

} // namespace troupe::queue
