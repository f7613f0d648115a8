#include "logging.hpp"

#include <map>
#include <mutex>

#include <caf/scheduled_actor.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "troupe/runtime/config.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/node.hpp"

namespace troupe {

namespace {

std::mutex registry_mtx;
std::map<caf::actor_system*, std::shared_ptr<spdlog::logger>> registry;

} // namespace

namespace detail {

std::shared_ptr<spdlog::logger> make_logger(const config& cfg) {
  spdlog::sink_ptr sink;
  if (cfg.log_file.empty())
    sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  else
    sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(cfg.log_file);
  auto lg = std::make_shared<spdlog::logger>(cfg.name, std::move(sink));
  lg->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%n] [%^%l%$] %v");
  lg->set_level(spdlog::level::from_str(cfg.log_level));
  lg->flush_on(spdlog::level::warn);
  return lg;
}

void register_logger(caf::actor_system& sys,
                     std::shared_ptr<spdlog::logger> lg) {
  std::lock_guard<std::mutex> guard{registry_mtx};
  registry[&sys] = std::move(lg);
}

void unregister_logger(caf::actor_system& sys) {
  std::lock_guard<std::mutex> guard{registry_mtx};
  registry.erase(&sys);
}

} // namespace detail

spdlog::logger& log(caf::actor_system& sys) {
  std::lock_guard<std::mutex> guard{registry_mtx};
  if (auto i = registry.find(&sys); i != registry.end())
    return *i->second;
  return *spdlog::default_logger_raw();
}

void install_log_handlers(caf::scheduled_actor* self) {
  self->set_default_handler(
    [](caf::scheduled_actor* s,
       caf::message_view& x) -> caf::result<caf::message> {
      log(s->system())
        .warn("actor #{} dropped an unexpected message: {}", s->id(),
              to_string(x.content()));
      return caf::sec::unexpected_message;
    });
  self->set_exception_handler(
    [](caf::scheduled_actor* s, std::exception_ptr& ep) -> caf::error {
      std::string what = "unknown exception";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
        // keep "unknown exception"
      }
      log(s->system())
        .error("actor #{} ({}) failed: {}", s->id(), s->name(), what);
      return caf::make_error(caf::sec::runtime_error, std::move(what));
    });
}

} // namespace troupe
