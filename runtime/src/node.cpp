#include "troupe/runtime/node.hpp"

#include <algorithm>
#include <cerrno> // program_invocation_short_name (GNU)

#include <caf/actor_cast.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <spdlog/spdlog.h>

#include "troupe/runtime/message_types.hpp"

#include "logging.hpp"
#include "signal_watcher.hpp"

namespace troupe {

namespace {

// A node always has a name: a program that never called `parse()` (an
// embedded node) gets the program's, as `parse()` would have given it.
config& with_name(config& cfg) {
  if (cfg.name.empty())
    cfg.name = program_invocation_short_name != nullptr
                   && *program_invocation_short_name != '\0'
                 ? program_invocation_short_name
                 : "troupe";
  return cfg;
}

} // namespace

node::node(config& cfg, signals mode)
    : cfg_(with_name(cfg)), log_(detail::make_logger(cfg)),
      blocker_(mode == signals::stop), sys_(cfg) {
  detail::register_logger(sys_, log_);
  if (blocker_.enabled())
    watcher_ = std::make_unique<detail::signal_watcher>(*this);
  log_->debug("node started; message registry {}", fingerprint());
}

node::~node() {
  await_actors();
  watcher_.reset();
  log_->debug("node stopped");
  log_->flush();
  detail::unregister_logger(sys_);
}

std::string node::fingerprint() const {
  return registry_fingerprint(cfg_);
}

node_info node::info() const {
  return make_node_info(cfg_.name, cfg_);
}

void node::track(caf::actor_addr addr) {
  std::unique_lock<std::mutex> guard{mtx_};
  if (stopping_.load()) {
    guard.unlock();
    caf::anon_send_exit(addr, caf::exit_reason::user_shutdown);
    return;
  }
  top_level_.push_back(std::move(addr));
  if (top_level_.size() >= prune_at_) {
    // Forget actors that are gone; amortised O(1) per spawn.
    auto gone = [](const caf::actor_addr& x) {
      return caf::actor_cast<caf::strong_actor_ptr>(x) == nullptr;
    };
    top_level_.erase(std::remove_if(top_level_.begin(), top_level_.end(), gone),
                     top_level_.end());
    prune_at_ = std::max<size_t>(1024, top_level_.size() * 2);
  }
}

void node::stop() {
  std::vector<caf::actor_addr> xs;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopping_.exchange(true))
      return;
    xs.swap(top_level_);
  }
  log_->debug("stopping {} top-level actor(s)", xs.size());
  for (auto& x : xs)
    caf::anon_send_exit(x, caf::exit_reason::user_shutdown);
  stop_cv_.notify_all();
}

void node::stop_by_signal(int signo) {
  stop_signal_ = signo;
  stop();
}

bool node::wait_for_stop(caf::timespan timeout) {
  std::unique_lock<std::mutex> guard{mtx_};
  return stop_cv_.wait_for(guard, timeout, [this] { return stopping(); });
}

void node::wait_for_stop() {
  std::unique_lock<std::mutex> guard{mtx_};
  stop_cv_.wait(guard, [this] { return stopping(); });
}

void node::await_actors() {
  sys_.await_all_actors_done();
}

} // namespace troupe
