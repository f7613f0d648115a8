#include "troupe/supervision/pool.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <limits>
#include <string>
#include <thread>
#include <unordered_map>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <spdlog/spdlog.h>

#include "troupe/runtime/node.hpp"
#include "troupe/supervision/supervisor.hpp"

// Jobs only travel between actors of one process: no serialization needed.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(
  std::shared_ptr<troupe::supervision::detail::pool_job>)

namespace troupe::supervision {

namespace detail {

// The books of one pool, shared by the pool and its jobs. Invariants:
// (1) `jobs` holds exactly the submitted jobs that have neither returned nor
// been cancelled by `terminate`, and each of them is alive (a job leaves at
// the latest in its destructor); (2) `jobs` only grows while `closed` is
// false; (3) once `terminated` is true, a job in `jobs` is running or in
// its destructor.
struct pool_tracker {
  enum class job_state { queued, running };
  std::mutex mtx;
  std::condition_variable cv;
  bool closed = false;
  bool terminated = false;
  std::unordered_map<pool_job*, job_state> jobs;
};

pool_job::pool_job(std::shared_ptr<pool_tracker> tracker)
    : tracker_(std::move(tracker)) {
  // nop
}

pool_job::~pool_job() {
  forget();
}

caf::error pool_job::run() {
  using job_state = pool_tracker::job_state;
  {
    std::lock_guard<std::mutex> guard{tracker_->mtx};
    auto i = tracker_->jobs.find(this);
    if (i == tracker_->jobs.end())
      return caf::none; // cancelled by terminate: its handle already failed
    i->second = job_state::running;
  }
  auto err = do_run();
  std::lock_guard<std::mutex> guard{tracker_->mtx};
  tracker_->jobs.erase(this);
  tracker_->cv.notify_all();
  return err;
}

bool pool_job::forget() noexcept {
  std::lock_guard<std::mutex> guard{tracker_->mtx};
  auto i = tracker_->jobs.find(this);
  if (i == tracker_->jobs.end())
    return false;
  auto queued = i->second == pool_tracker::job_state::queued;
  tracker_->jobs.erase(i);
  tracker_->cv.notify_all();
  return queued;
}

caf::error job_error(const std::exception_ptr& ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    return caf::make_error(troupe::errc::job_failed, e.what());
  } catch (...) {
    return caf::make_error(troupe::errc::job_failed, "unknown exception");
  }
}

void report_callback_failure(const std::exception_ptr& ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    spdlog::error("pool: a result callback threw: {}", e.what());
  } catch (...) {
    spdlog::error("pool: a result callback threw an unknown exception");
  }
}

} // namespace detail

namespace {

using job_ptr = std::shared_ptr<detail::pool_job>;
using ready_atom = caf::atom_constant<caf::atom("ready")>;

// State of the dispatcher. Invariant: `jobs` and `idle` are never both
// non-empty (a job waits only while no worker is idle, and vice versa).
struct dispatcher_state {
  std::deque<job_ptr> jobs;
  std::vector<caf::actor> idle;
  static inline const char* name = "troupe.pool";
};

// Hands jobs to idle workers. Messaging interface:
// - `(job_ptr)`: runs the job on an idle worker, or queues it; no reply.
// - `(ready_atom, caf::actor w)`: worker `w` is idle; gives it the oldest
//   queued job, or remembers it as idle; no reply.
caf::behavior dispatcher(caf::stateful_actor<dispatcher_state>* self) {
  return {
    [self](job_ptr& job) {
      auto& st = self->state;
      if (st.idle.empty()) {
        st.jobs.push_back(std::move(job));
        return;
      }
      auto w = std::move(st.idle.back());
      st.idle.pop_back();
      self->send(w, std::move(job));
    },
    [self](ready_atom, caf::actor& w) {
      auto& st = self->state;
      if (st.jobs.empty()) {
        st.idle.push_back(std::move(w));
        return;
      }
      auto job = std::move(st.jobs.front());
      st.jobs.pop_front();
      self->send(w, std::move(job));
    },
  };
}

// Runs one job at a time; asks `disp` for the next one when idle. Exits with
// the job's error if a job throws, for its supervisor to restart it.
caf::behavior pool_worker(caf::event_based_actor* self, caf::actor disp) {
  self->send(disp, ready_atom::value, caf::actor_cast<caf::actor>(self));
  return {
    [self, disp](job_ptr& job) {
      auto err = job->run();
      job.reset();
      if (err) {
        self->quit(std::move(err));
        return;
      }
      self->send(disp, ready_atom::value, caf::actor_cast<caf::actor>(self));
    },
  };
}

} // namespace

pool::pool(node& host, pool_options opts)
    : size_(opts.size), tracker_(std::make_shared<detail::pool_tracker>()) {
  // Not top-level actors of `host`: the pool ends them itself (terminate).
  auto& sys = host.system();
  if (size_ == 0)
    size_ = std::max(1u, std::thread::hardware_concurrency());
  dispatcher_ = troupe::spawn(sys, dispatcher);
  std::vector<child_spec> children;
  for (size_t i = 0; i < size_; ++i) {
    auto start = [disp = dispatcher_, blocking = opts.blocking](
                   caf::actor_system& s) -> caf::actor {
      if (blocking)
        return troupe::spawn<caf::detached>(s, pool_worker, disp);
      return troupe::spawn(s, pool_worker, disp);
    };
    children.push_back(child("worker-" + std::to_string(i), std::move(start)));
  }
  // Every failing job restarts its worker: the pool must never give up.
  supervisor_flags flags;
  flags.intensity = std::numeric_limits<size_t>::max();
  flags.period = std::chrono::seconds(1);
  supervisor_ = troupe::spawn(sys, supervisor, flags, std::move(children));
}

pool::~pool() {
  terminate();
}

void pool::close() {
  std::lock_guard<std::mutex> guard{tracker_->mtx};
  tracker_->closed = true;
}

void pool::terminate() {
  using job_state = detail::pool_tracker::job_state;
  // Declared before the lock: releasing a job may run its destructor, which
  // takes the lock.
  std::vector<std::shared_ptr<detail::pool_job>> queued;
  std::vector<std::shared_ptr<detail::pool_job>> running;
  {
    std::lock_guard<std::mutex> guard{tracker_->mtx};
    if (tracker_->terminated)
      return;
    tracker_->closed = true;
    tracker_->terminated = true;
    auto& jobs = tracker_->jobs;
    for (auto i = jobs.begin(); i != jobs.end();) {
      // Null only while the job's destructor waits for the lock; that
      // destructor then fails the job's result itself, see `forget`.
      auto ptr = i->first->weak_from_this().lock();
      if (ptr && i->second == job_state::queued) {
        i = jobs.erase(i); // its worker skips it, see pool_job::run
        queued.push_back(std::move(ptr));
      } else {
        if (ptr)
          running.push_back(std::move(ptr));
        ++i;
      }
    }
    tracker_->cv.notify_all();
  }
  // Fail the handles outside the lock: error callbacks may call the pool.
  for (auto& job : queued)
    job->fail(caf::make_error(troupe::errc::closed,
                              "pool terminated before the job ran"));
  for (auto& job : running)
    job->fail(caf::make_error(troupe::errc::closed,
                              "pool terminated while the job ran"));
  // The workers exit with the supervisor, each once its current job returns.
  caf::anon_send_exit(supervisor_, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(dispatcher_, caf::exit_reason::user_shutdown);
}

caf::error pool::join() {
  std::unique_lock<std::mutex> guard{tracker_->mtx};
  if (!tracker_->closed)
    return errc::pool_running;
  tracker_->cv.wait(guard, [this] { return tracker_->jobs.empty(); });
  return caf::none;
}

caf::error pool::join(caf::timespan timeout) {
  std::unique_lock<std::mutex> guard{tracker_->mtx};
  if (!tracker_->closed)
    return errc::pool_running;
  if (!tracker_->cv.wait_for(guard, timeout,
                             [this] { return tracker_->jobs.empty(); }))
    return caf::make_error(troupe::errc::timeout,
                           std::to_string(tracker_->jobs.size())
                             + " job(s) still pending");
  return caf::none;
}

caf::error pool::submit(std::shared_ptr<detail::pool_job> job) {
  {
    std::lock_guard<std::mutex> guard{tracker_->mtx};
    if (tracker_->closed)
      return troupe::errc::closed;
    tracker_->jobs.emplace(job.get(), detail::pool_tracker::job_state::queued);
  }
  caf::anon_send(dispatcher_, std::move(job));
  return caf::none;
}

} // namespace troupe::supervision
