#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

struct sqlite3;
struct sqlite3_stmt;

namespace troupe::queue::detail {

/// What a store was created for. `open` refuses a store whose queue name or
/// type names differ from the ones it was created with.
struct store_meta {
  std::string queue;
  std::string task_type;
  std::string result_type;
};

/// A task as the store keeps it. `payload` is the task's serialized bytes.
struct stored_task {
  uint64_t id = 0;
  std::string payload;
  uint32_t attempts = 0;
};

/// A result as the store keeps it: exactly one per task id.
struct stored_result {
  uint64_t id = 0;
  bool ok = true;
  /// The result's serialized bytes when `ok`.
  std::string payload;
  /// The error when not `ok` (the task went to the dead-letter list).
  std::string error;
  uint32_t attempts = 0;
};

/// What `open` found in an existing store.
struct store_contents {
  /// Tasks without a result, in id order: the queue to serve again.
  std::vector<stored_task> pending;
  /// Results the application has not taken with `get` yet, in id order.
  std::vector<stored_result> unconsumed;
  /// The largest task id ever stored (0 for a new store).
  uint64_t last_id = 0;
  /// Counts over the whole store.
  uint64_t tasks = 0;
  uint64_t results = 0;
  uint64_t dead = 0;
  uint64_t consumed = 0;
  /// Whether `close_queue` was recorded: no more tasks will be put.
  bool closed = false;
};

/// The durable half of a task queue: tasks, results and the dead-letter list
/// in one SQLite database (WAL mode, `synchronous=NORMAL`), so that a master
/// killed at any moment and started again on the same file loses nothing
/// that was committed.
///
/// Writes are batched: every mutating call joins the current transaction,
/// which `commit()` ends. The queue actor commits at the end of every message
/// that wrote, before it answers (a `put`, a `get`), so a kill loses at most
/// the uncommitted tail, never an acknowledged task. A result is stored at most
/// once per task id (`add_result` on a task that already has one does
/// nothing and returns false).
///
/// Not thread-safe: one queue actor owns it.
class task_store {
public:
  task_store(const task_store&) = delete;
  task_store& operator=(const task_store&) = delete;

  ~task_store();

  /// Opens `path`, creating the file and the schema if needed, and reads
  /// what it holds into `contents`. Fails with `errc::store_failed` and a
  /// message that names the file and the cause (cannot open, not a troupe
  /// store, created for another queue or other types, corrupt, or in use:
  /// a store has one owner, held by an exclusive lock on `PATH.lock` for as
  /// long as the store is open, which names the holder's pid).
  [[nodiscard]] static caf::expected<std::unique_ptr<task_store>>
  open(const std::string& path, const store_meta& meta,
       store_contents& contents);

  /// Stores a new task with a caller-chosen id (ids increase) and returns
  /// `id`. With a `key` (not empty) that a stored task already has, stores
  /// nothing and returns that task's id instead: a key is the application's
  /// own id of a task, stored once. Returns 0 if a write failed (`commit`
  /// reports it).
  uint64_t add_task(uint64_t id, const std::string& payload,
                    const std::string& key = {});

  /// Records that task `id` has been delivered `attempts` times (called when
  /// a lease ends without a result, not on every delivery).
  void set_attempts(uint64_t id, uint32_t attempts);

  /// Stores the one result of a task (ok or dead-lettered). Returns false if
  /// the task already had one; then nothing changes.
  bool add_result(const stored_result& result);

  /// Marks the result of task `id` as taken by the application.
  void mark_consumed(uint64_t id);

  /// Records that the queue takes no more tasks.
  void close_queue();

  /// Ends the current transaction (a no-op when nothing changed). Fails with
  /// `errc::store_failed` if SQLite failed (disk full, I/O error); the
  /// message names the first write that failed.
  [[nodiscard]] caf::error commit();

  /// Returns the dead-lettered results (not ok), in id order.
  std::vector<stored_result> dead_letters();

  /// Returns the path the store was opened with.
  const std::string& path() const noexcept {
    return path_;
  }

private:
  task_store(sqlite3* db, std::string path, int lock_fd);

  // Opens the transaction the next write joins. Returns false, doing nothing,
  // once a write of the current batch has failed.
  bool begin();

  // Runs the prepared statement `stmt` of the write `what` on task `id`, then
  // resets it. On failure remembers the cause in `failure_`.
  bool run(sqlite3_stmt* stmt, const char* what, uint64_t id);

  sqlite3* db_;
  std::string path_;
  // The descriptor of `PATH.lock`, locked (flock) while the store is open.
  int lock_fd_;
  bool in_transaction_ = false;
  // Prepared statements, owned; finalized by the destructor.
  std::vector<sqlite3_stmt*> statements_;
  // Why a write of the current batch failed; empty while all succeeded.
  // Every later write is dropped, and `commit` rolls the batch back and
  // reports this, with a note appended (hence text, not a `caf::error`).
  std::string failure_;
};

} // namespace troupe::queue::detail
