#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>
#include <caf/timespan.hpp>

#include "troupe/runtime/errc.hpp"

namespace troupe::actors {

namespace detail {

/// Counts the jobs of a pool that have not finished yet and whether the pool
/// still takes jobs. Shared by the pool and its jobs. Invariant: `pending`
/// only grows while `closed` is false. @private
struct pool_tracker {
  std::mutex mtx;
  std::condition_variable cv;
  bool closed = false;
  size_t pending = 0;

  // Marks one job as finished and wakes `join`.
  void finish();
};

/// One submitted job, type-erased. A worker calls `run` exactly once. @private
class pool_job {
public:
  explicit pool_job(std::shared_ptr<pool_tracker> tracker)
      : tracker_(std::move(tracker)) {}

  virtual ~pool_job();

  pool_job(const pool_job&) = delete;
  pool_job& operator=(const pool_job&) = delete;

  /// Runs the job, delivers its result and counts it as finished. Returns
  /// the error if the job threw (the worker then exits with it), else none.
  caf::error run() {
    auto err = do_run();
    tracker_->finish();
    return err;
  }

protected:
  virtual caf::error do_run() = 0;

private:
  std::shared_ptr<pool_tracker> tracker_;
};

/// Returns `errc::job_failed` with the message of the exception `ep`.
caf::error job_error(const std::exception_ptr& ep);

/// Reports an exception thrown by a result callback. @private
void report_callback_failure(const std::exception_ptr& ep);

/// The shared state of an `async_result<R>`. Invariant: once `result` is set
/// it never changes, and `ready` turns true only after the callbacks ran.
/// @private
template <class R>
struct result_state {
  std::mutex mtx;
  std::condition_variable cv;
  std::optional<caf::expected<R>> result;
  bool ready = false;
  std::function<void(const R&)> callback;
  std::function<void(const caf::error&)> error_callback;

  // Stores `x`, runs the matching callback, then wakes `get`.
  void deliver(caf::expected<R> x) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      result = std::move(x);
    }
    try {
      if (*result && callback)
        callback(**result);
      else if (!*result && error_callback)
        error_callback(result->error());
    } catch (...) {
      report_callback_failure(std::current_exception());
    }
    std::lock_guard<std::mutex> guard{mtx};
    ready = true;
    cv.notify_all();
  }
};

/// A job computing an `R` with `F`. @private
template <class R, class F>
class typed_pool_job final : public pool_job {
public:
  typed_pool_job(std::shared_ptr<pool_tracker> tracker, F f,
                 std::shared_ptr<result_state<R>> st)
      : pool_job(std::move(tracker)), f_(std::move(f)), st_(std::move(st)) {}

protected:
  caf::error do_run() override {
    caf::error err;
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
    return err;
  }

private:
  F f_;
  std::shared_ptr<result_state<R>> st_;
};

} // namespace detail

/// The eventual result of a job submitted with `pool::apply_async`, like
/// Python's `AsyncResult`. A cheap handle: copies share one result.
/// Thread-safe: any thread may call any member function at any time.
template <class R>
class async_result {
public:
  explicit async_result(std::shared_ptr<detail::result_state<R>> st)
      : st_(std::move(st)) {}

  /// Returns whether the job finished (and its callback ran).
  bool ready() const {
    std::lock_guard<std::mutex> guard{st_->mtx};
    return st_->ready;
  }

  /// Waits up to `timeout` for the result. Returns the job's value, its
  /// failure (`errc::job_failed` with the exception's message), or
  /// `errc::timeout` if it did not finish in time.
  caf::expected<R> get(caf::timespan timeout) const {
    std::unique_lock<std::mutex> guard{st_->mtx};
    if (!st_->cv.wait_for(guard, timeout, [this] { return st_->ready; }))
      return caf::make_error(errc::timeout, "job still running");
    return *st_->result;
  }

  /// Waits as long as it takes for the result; see `get(timeout)`.
  caf::expected<R> get() const {
    std::unique_lock<std::mutex> guard{st_->mtx};
    st_->cv.wait(guard, [this] { return st_->ready; });
    return *st_->result;
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
/// `join`. For use from plain threads (blocking calls), not from actors.
///
/// A dispatcher actor keeps a FIFO of jobs and the list of idle workers; a
/// worker asks for the next job whenever it is idle, so no job waits behind
/// a slow one while another worker is free. Workers run under a
/// `troupe::actors::supervisor`: a job that throws fails its result with
/// `errc::job_failed`, its worker exits with that error and is restarted, and
/// the pool carries on.
///
/// Callbacks run on the worker's thread right after the job, before `get`
/// returns; they must not block for long, and must not call `join` on the
/// pool that runs them (deadlock).
///
/// Thread-safety: all member functions may be called from any thread
/// concurrently, except the destructor. Destroy the pool before its
/// `caf::actor_system`. The destructor closes the pool, waits for every
/// submitted job (a job that never returns keeps it waiting) and stops the
/// actors.
class pool {
public:
  /// Starts `opts.size` workers in `sys`.
  pool(caf::actor_system& sys, pool_options opts);

  ~pool();

  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  /// Returns the number of workers.
  size_t size() const noexcept {
    return size_;
  }

  /// Submits `f()` and returns a handle to its result. On success calls
  /// `callback(value)`, on failure `error_callback(err)`, each at most once
  /// and on the worker's thread. Returns `errc::pool_closed` after `close()`
  /// (then no callback runs).
  template <class F>
  [[nodiscard]] caf::expected<async_result<std::invoke_result_t<F&>>>
  apply_async(F f,
              std::function<void(const std::invoke_result_t<F&>&)> callback
              = {},
              std::function<void(const caf::error&)> error_callback = {}) {
    using R = std::invoke_result_t<F&>;
    static_assert(!std::is_void_v<R>, "jobs must return a value");
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
  /// takes. Returns `errc::pool_closed` after `close()`.
  template <class F, class T, class R = std::invoke_result_t<F&, const T&>>
  [[nodiscard]] caf::expected<std::vector<R>> map(F f,
                                                  const std::vector<T>& xs) {
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

  /// Stops taking jobs: later submissions fail with `errc::pool_closed`.
  /// Jobs already submitted still run. Idempotent.
  void close();

  /// Waits until every submitted job has finished. Returns
  /// `errc::pool_running` if the pool was not closed first (as in Python).
  [[nodiscard]] caf::error join();

  /// Like `join()`, but returns `errc::timeout` if jobs are still running
  /// after `timeout`.
  [[nodiscard]] caf::error join(caf::timespan timeout);

private:
  caf::error submit(std::shared_ptr<detail::pool_job> job);

  size_t size_;
  std::shared_ptr<detail::pool_tracker> tracker_;
  caf::actor dispatcher_;
  caf::actor supervisor_;
};

} // namespace troupe::actors
