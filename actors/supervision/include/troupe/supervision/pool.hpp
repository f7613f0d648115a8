#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/timespan.hpp>
#include <caf/unit.hpp>

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/fwd.hpp"
#include "troupe/runtime/one_shot.hpp"
#include "troupe/supervision/errc.hpp"

namespace troupe::supervision {

namespace detail {

/// The jobs of one pool that have not finished; defined in pool.cpp.
/// @private
struct pool_tracker;

/// One submitted job, type-erased. A worker calls `run` at most once; a job
/// that `pool::terminate` cancelled does not run. @private
class pool_job : public std::enable_shared_from_this<pool_job> {
public:
  explicit pool_job(std::shared_ptr<pool_tracker> tracker);

  virtual ~pool_job();

  pool_job(const pool_job&) = delete;
  pool_job& operator=(const pool_job&) = delete;

  /// Runs the job unless it was cancelled, delivers its result and counts it
  /// as finished. Returns the error if the job threw (the worker then exits
  /// with it), else none.
  [[nodiscard]] caf::error run();

  /// Fails the job's result with `err`, unless it already has one.
  virtual void fail(caf::error err) = 0;

protected:
  [[nodiscard]] virtual caf::error do_run() = 0;

  /// Removes the job from its pool's books. Returns whether it was still
  /// waiting to run, i.e. whether it was dropped unrun and uncancelled.
  bool forget() noexcept;

private:
  std::shared_ptr<pool_tracker> tracker_;
};

/// Returns `troupe::errc::job_failed` with the message of the exception `ep`.
[[nodiscard]] caf::error job_error(const std::exception_ptr& ep);

/// Reports an exception thrown by a result callback. @private
void report_callback_failure(const std::exception_ptr& ep);

/// The callback type for a result of type `R`. @private
template <class R>
struct callback_of {
  using type = std::function<void(const R&)>;
};

template <>
struct callback_of<void> {
  using type = std::function<void()>;
};

} // namespace detail

/// The callback that receives a job's result: `void(const R&)`, or `void()`
/// for a job that returns `void`.
template <class R>
using result_callback = typename detail::callback_of<R>::type;

namespace detail {

/// The shared state of an `async_result<R>`: the result, delivered once, and
/// the callbacks that run when it arrives (before `get` returns). @private
template <class R>
struct result_state {
  one_shot<R> result;
  result_callback<R> callback;
  std::function<void(const caf::error&)> error_callback;

  // Stores `x` unless a result is already there; then runs the matching
  // callback and wakes `get`. Returns whether `x` was stored.
  bool deliver(caf::expected<R> x) {
    return result.deliver(std::move(x), [this](const caf::expected<R>& y) {
      try {
        if (y && callback) {
          if constexpr (std::is_void_v<R>)
            callback();
          else
            callback(*y);
        } else if (!y && error_callback) {
          error_callback(y.error());
        }
      } catch (...) {
        report_callback_failure(std::current_exception());
      }
    });
  }
};

/// A job computing an `R` (or nothing, for `void`) with `F`. @private
template <class R, class F>
class typed_pool_job final : public pool_job {
public:
  typed_pool_job(std::shared_ptr<pool_tracker> tracker, F f,
                 std::shared_ptr<result_state<R>> st)
      : pool_job(std::move(tracker)), f_(std::move(f)), st_(std::move(st)) {}

  ~typed_pool_job() override {
    // Only if the pool's actors ended without `terminate` (e.g. the actor
    // system went first): the handle must not wait forever.
    if (forget())
      fail(caf::make_error(troupe::errc::closed,
                           "the pool dropped the job unrun"));
  }

  void fail(caf::error err) override {
    st_->deliver(caf::expected<R>{std::move(err)});
  }

protected:
  [[nodiscard]] caf::error do_run() override {
    caf::error err;
    if constexpr (std::is_void_v<R>) {
      try {
        f_();
      } catch (...) {
        err = job_error(std::current_exception());
      }
      if (err)
        st_->deliver(caf::expected<void>{err});
      else
        st_->deliver(caf::expected<void>{caf::unit});
    } else {
      std::optional<R> value;
      try {
        value.emplace(f_());
      } catch (...) {
        err = job_error(std::current_exception());
      }
      if (value)
        st_->deliver(caf::expected<R>{std::move(*value)});
      else
        st_->deliver(caf::expected<R>{err});
    }
    return err;
  }

private:
  F f_;
  std::shared_ptr<result_state<R>> st_;
};

} // namespace detail

/// The eventual result of a job submitted with `pool::apply_async`, like
/// Python's `AsyncResult`. A cheap handle: copies share one result. For a
/// job returning `void`, `get` returns `caf::expected<void>`: success or the
/// job's error. Thread-safe: any thread may call any member function at any
/// time.
template <class R>
class async_result {
public:
  explicit async_result(std::shared_ptr<detail::result_state<R>> st)
      : st_(std::move(st)) {}

  /// Returns whether the result is there (and its callback ran).
  bool ready() const {
    return st_->result.ready();
  }

  /// Waits up to `timeout` for the result. Returns the job's value; its
  /// failure (`troupe::errc::job_failed` with the exception's message);
  /// `troupe::errc::closed` if `pool::terminate` (or the pool's destructor)
  /// stopped the pool before the job returned; or `troupe::errc::timeout` if
  /// none of these happened in time.
  [[nodiscard]] caf::expected<R> get(caf::timespan timeout) const {
    return st_->result.wait(timeout, "job still running");
  }

  /// Waits as long as it takes for the result; see `get(timeout)`. A job that
  /// never returns keeps it waiting until the pool is terminated.
  [[nodiscard]] caf::expected<R> get() const {
    return st_->result.wait();
  }

private:
  std::shared_ptr<detail::result_state<R>> st_;
};

/// How a `pool` runs its jobs.
struct pool_options {
  /// At most this many jobs run at once; 0 means one per core
  /// (`std::thread::hardware_concurrency()`).
  size_t size = 0;
  /// Whether jobs block (sleep, file or socket I/O): then each worker runs on
  /// a thread of its own (`caf::detached`) instead of on CAF's scheduler,
  /// which a blocking job would starve.
  bool blocking = false;
};

/// A pool of worker actors that run submitted jobs, like Python's
/// `multiprocessing.Pool` over threads: `map`, `apply_async`, `close`,
/// `join`, `terminate`. For use from plain threads (blocking calls), not from
/// actors.
///
/// A dispatcher actor keeps a FIFO of jobs and the list of idle workers; a
/// worker asks for the next job whenever it is idle, so no job waits behind
/// a slow one while another worker is free. Workers run under a
/// `troupe::supervision::supervisor`: a job that throws fails its result with
/// `troupe::errc::job_failed`, its worker exits with that error and is
/// restarted, and the pool carries on.
///
/// Each job gets exactly one result: its value, its failure, or
/// `troupe::errc::closed` from `terminate`. The matching callback, if given,
/// runs once, before `get` returns: on the worker's thread right after the job,
/// or on the thread that calls `terminate`. Callbacks must not block for
/// long, and must not call `join` on the pool that runs them (deadlock).
///
/// A running job cannot be interrupted: a thread cannot be killed. So
/// `terminate` and the destructor do not wait for running jobs, but those
/// jobs still run to their end on their worker's thread, and anything they
/// use must outlive them. CAF's `~actor_system` waits for every actor, so a
/// job that never returns still blocks the shutdown of the actor system (on
/// a non-blocking pool, it also holds one of the scheduler's threads).
///
/// Thread-safety: all member functions may be called from any thread
/// concurrently, except the destructor. Destroy the pool before its node.
class pool {
public:
  /// Starts `opts.size` workers on `host`'s actor system.
  pool(node& host, pool_options opts);

  /// Terminates the pool (see `terminate()`) and returns without waiting for
  /// jobs, as Python's `Pool` does when it is garbage-collected: queued jobs
  /// fail with `troupe::errc::closed` and never run; running ones are abandoned
  /// (they fail too, and finish unobserved on their detached or scheduler
  /// thread). To let every submitted job finish first, call `close()` and
  /// `join()`.
  ~pool();

  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  /// Returns the number of workers.
  size_t size() const noexcept {
    return size_;
  }

  /// Submits `f()` and returns a handle to its result. On success calls
  /// `callback(value)` (`callback()` if `f` returns `void`), on failure
  /// `error_callback(err)`, exactly one of them once. Returns
  /// `troupe::errc::closed` after `close()` or `terminate()` (then no callback
  /// runs).
  template <class F, class R = std::invoke_result_t<F&>>
  [[nodiscard]] caf::expected<async_result<R>>
  apply_async(F f, result_callback<R> callback = {},
              std::function<void(const caf::error&)> error_callback = {}) {
    auto st = std::make_shared<detail::result_state<R>>();
    st->callback = std::move(callback);
    st->error_callback = std::move(error_callback);
    auto job = std::make_shared<detail::typed_pool_job<R, F>>(tracker_,
                                                              std::move(f), st);
    if (auto err = submit(std::move(job)))
      return err;
    return async_result<R>{std::move(st)};
  }

  /// Applies `f` to each of `xs` on the pool; returns the results in the
  /// order of `xs`, or the first failure in that order. Waits as long as it
  /// takes. Returns `troupe::errc::closed` after `close()`.
  template <class F, class T, class R = std::invoke_result_t<F&, const T&>>
  [[nodiscard]] caf::expected<std::vector<R>> map(F f,
                                                  const std::vector<T>& xs) {
    static_assert(!std::is_void_v<R>,
                  "map needs a function that returns a value; submit void "
                  "jobs with apply_async");
    std::vector<async_result<R>> handles;
    handles.reserve(xs.size());
    for (auto& x : xs) {
      auto h = apply_async([f, x] { return f(x); });
      if (!h)
        return h.error(); // jobs already submitted still run
      handles.push_back(std::move(*h));
    }
    std::vector<R> results;
    results.reserve(xs.size());
    for (auto& h : handles) {
      auto r = h.get();
      if (!r)
        return r.error();
      results.push_back(std::move(*r));
    }
    return results;
  }

  /// Stops taking jobs: later submissions fail with `troupe::errc::closed`.
  /// Jobs already submitted still run. Idempotent.
  void close();

  /// Stops the pool now, like Python's `Pool.terminate`: takes no more jobs
  /// (as `close()` does), runs none of the jobs still queued, and fails every
  /// job without a result yet with `troupe::errc::closed`, calling its
  /// `error_callback` on this thread. Jobs that are running go on until they
  /// return, but their results are discarded and their callbacks do not run;
  /// then their workers exit. Does not wait. Idempotent.
  void terminate();

  /// Waits until every submitted job has finished, however long that takes
  /// (a job that never returns keeps it waiting: prefer `join(timeout)`).
  /// After `terminate()`, waits only for the jobs that were running to
  /// return. Returns `errc::pool_running` if the pool was neither closed nor
  /// terminated first (as in Python).
  [[nodiscard]] caf::error join();

  /// Like `join()`, but returns `troupe::errc::timeout` if jobs are still
  /// running after `timeout` (context: how many).
  [[nodiscard]] caf::error join(caf::timespan timeout);

private:
  [[nodiscard]] caf::error submit(std::shared_ptr<detail::pool_job> job);

  size_t size_;
  std::shared_ptr<detail::pool_tracker> tracker_;
  caf::actor dispatcher_;
  caf::actor supervisor_;
};

} // namespace troupe::supervision
