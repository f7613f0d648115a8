// The directory of a master's task queues: `serve_queues` publishes an
// actor at the master's port that workers ask for a queue by name
// (`tq_join_atom`); it hands the join on to that queue's actor, or refuses
// it with `errc::no_such_queue`.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <spdlog/spdlog.h>

#include "troupe/queue/errc.hpp"
#include "troupe/queue/protocol.hpp"
#include "troupe/queue/task_queue.hpp"
#include "troupe/runtime/blocking_request.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/net.hpp"
#include "troupe/runtime/node.hpp"

namespace troupe::queue {

namespace {

/// Returns the behavior of the directory actor of `queues` (by name). It
/// stops once every queue has stopped: a master that dropped its queues
/// serves nothing, and its program must be able to exit. Messaging interface:
/// - `(tq_join_atom, worker_hello hello) -> caf::actor`: delegates the join
///   to the queue named `hello.queue`; `errc::no_such_queue`, naming the
///   queues served, if there is none.
caf::behavior directory(caf::event_based_actor* self,
                        std::map<std::string, caf::actor> queues) {
  install_log_handlers(self);
  auto running = std::make_shared<size_t>(queues.size());
  self->set_down_handler([self, running](caf::down_msg&) {
    if (--*running == 0)
      self->quit();
  });
  for (auto& kvp : queues)
    self->monitor(kvp.second);
  return {
    [=](tq_join_atom join, worker_hello& hello) -> caf::result<caf::message> {
      auto i = queues.find(hello.queue);
      if (i == queues.end()) {
        std::string names;
        for (auto& kvp : queues)
          names += (names.empty() ? "'" : ", '") + kvp.first + "'";
        auto err = caf::make_error(
          errc::no_such_queue, "no queue named '" + hello.queue
                                 + "' here (this master serves " + names + ")");
        troupe::log(self->system())
          .error("refused worker {}: {}", hello.node.name, error_text(err));
        return err;
      }
      return self->delegate(i->second, join, std::move(hello));
    },
  };
}

} // namespace

caf::expected<uint16_t> serve_queues(node& host, const net_config& cfg,
                                     uint16_t port,
                                     const std::vector<caf::actor>& queues) {
  // Ask each queue its name, then publish a directory of them.
  std::map<std::string, caf::actor> by_name;
  for (auto& q : queues) {
    auto name = blocking_request<std::string>(
      host.system(), q, std::chrono::seconds{10}, caf::get_atom::value);
    if (!name)
      return std::move(name.error());
    by_name.emplace(std::move(*name), q);
  }
  auto dir = host.spawn(directory, std::move(by_name));
  return listen(host.system(), dir, cfg, port);
}

} // namespace troupe::queue
