#include "task_store.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <type_traits>
#include <utility>

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include "troupe/queue/errc.hpp"

// Layout of a store, format version 1:
//
//   meta(key TEXT PRIMARY KEY, value)    format, version, queue, task_type,
//                                        result_type, closed
//   tasks(id INTEGER PRIMARY KEY, payload BLOB, attempts INTEGER, key TEXT)
//   results(id INTEGER PRIMARY KEY, ok INTEGER, payload BLOB, error TEXT,
//           attempts INTEGER, consumed INTEGER)
//
// Tasks are never deleted, so the largest task id is the last id ever used
// and a task is pending exactly when `results` has no row with its id. The
// ids are the rowids of both tables: every hot write is one B-tree insert or
// update at a known key, with no secondary index to maintain except the
// partial indices of dead letters, which ok results skip, and of task keys,
// which tasks put without a key skip. (`key` came after version 1's first
// release: `open` adds it to a store that lacks it.)
//
// Failure model: a write that fails (constraint, I/O, lock timeout) poisons
// the batch. Later writes are dropped, and `commit` rolls back everything
// since the previous commit and reports the first failure, so a successful
// `commit` always means every write of the batch is durable.

namespace troupe::queue::detail {

namespace {

/// Identifies a troupe task store in its meta table.
constexpr const char* format_name = "troupe.task_store";

/// Bumped on every incompatible change of the layout above.
constexpr int64_t format_version = 1;

/// How long a write waits for a lock held by another connection.
constexpr int busy_timeout_ms = 2000;

constexpr const char* schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY NOT NULL, value NOT NULL);
CREATE TABLE IF NOT EXISTS tasks(
  id INTEGER PRIMARY KEY,
  payload BLOB NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  key TEXT);
CREATE TABLE IF NOT EXISTS results(
  id INTEGER PRIMARY KEY,
  ok INTEGER NOT NULL,
  payload BLOB NOT NULL,
  error TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  consumed INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS results_dead ON results(id) WHERE ok = 0;
)sql";

/// Makes task keys unique; run after the table has its `key` column.
constexpr const char* key_index_sql
  = "CREATE UNIQUE INDEX IF NOT EXISTS tasks_key ON tasks(key)"
    " WHERE key IS NOT NULL";

// Indices into `task_store::statements_`, in the order of `statement_sql`.
enum statement_index : size_t {
  begin_stmt,
  commit_stmt,
  rollback_stmt,
  add_task_stmt,
  add_keyed_task_stmt,
  find_key_stmt,
  set_attempts_stmt,
  add_result_stmt,
  mark_consumed_stmt,
  close_queue_stmt,
  dead_letters_stmt,
  statement_count,
};

constexpr const char* statement_sql[statement_count] = {
  "BEGIN IMMEDIATE",
  "COMMIT",
  "ROLLBACK",
  "INSERT INTO tasks(id, payload, attempts) VALUES(?1, ?2, 0)",
  "INSERT INTO tasks(id, payload, attempts, key) VALUES(?1, ?2, 0, ?3)"
  " ON CONFLICT(key) WHERE key IS NOT NULL DO NOTHING",
  "SELECT id FROM tasks WHERE key = ?1",
  "UPDATE tasks SET attempts = ?2 WHERE id = ?1",
  "INSERT INTO results(id, ok, payload, error, attempts, consumed)"
  " VALUES(?1, ?2, ?3, ?4, ?5, 0) ON CONFLICT(id) DO NOTHING",
  "UPDATE results SET consumed = 1 WHERE id = ?1",
  "INSERT INTO meta(key, value) VALUES('closed', 1)"
  " ON CONFLICT(key) DO UPDATE SET value = 1",
  "SELECT id, ok, payload, error, attempts FROM results WHERE ok = 0"
  " ORDER BY id",
};

/// Owns a statement prepared for one use.
class statement {
public:
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  statement() = default;

  ~statement() {
    sqlite3_finalize(ptr_);
  }

  sqlite3_stmt* get() const noexcept {
    return ptr_;
  }

  sqlite3_stmt** out() noexcept {
    return &ptr_;
  }

private:
  sqlite3_stmt* ptr_ = nullptr;
};

sqlite3_int64 to_sql(uint64_t x) {
  return static_cast<sqlite3_int64>(x);
}

uint64_t from_sql(sqlite3_int64 x) {
  return static_cast<uint64_t>(x);
}

std::string column_blob(sqlite3_stmt* stmt, int col) {
  // Read the pointer first: sqlite3_column_bytes may convert the value.
  auto* data = static_cast<const char*>(sqlite3_column_blob(stmt, col));
  auto size = static_cast<size_t>(sqlite3_column_bytes(stmt, col));
  return data != nullptr ? std::string{data, size} : std::string{};
}

std::string column_text(sqlite3_stmt* stmt, int col) {
  auto* data = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
  auto size = static_cast<size_t>(sqlite3_column_bytes(stmt, col));
  return data != nullptr ? std::string{data, size} : std::string{};
}

void bind_blob(sqlite3_stmt* stmt, int col, const std::string& x) {
  // SQLITE_STATIC: `x` outlives the step that reads it.
  sqlite3_bind_blob64(stmt, col, x.data(), x.size(), SQLITE_STATIC);
}

/// Reads a result from a row of `id, ok, payload, error, attempts`.
stored_result read_result(sqlite3_stmt* stmt) {
  stored_result x;
  x.id = from_sql(sqlite3_column_int64(stmt, 0));
  x.ok = sqlite3_column_int(stmt, 1) != 0;
  x.payload = column_blob(stmt, 2);
  x.error = column_text(stmt, 3);
  x.attempts = static_cast<uint32_t>(sqlite3_column_int64(stmt, 4));
  return x;
}

std::string quote(const std::string& x) {
  return "'" + x + "'";
}

/// Describes what a store was created for, e.g.
/// `queue 'jobs' (task type int64_t, result type std::string)`.
std::string describe(const store_meta& x) {
  return "queue " + quote(x.queue) + " (task type " + x.task_type
         + ", result type " + x.result_type + ")";
}

/// Returns `errc::store_failed` with `what` as its message: the one error
/// of the store.
caf::error store_error(std::string what) {
  return caf::make_error(errc::store_failed, std::move(what));
}

/// Runs SQL without results; on failure returns an error whose message is
/// `prefix` plus SQLite's.
[[nodiscard]] caf::error exec(sqlite3* db, const char* sql,
                              const std::string& prefix) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK)
    return caf::none;
  return store_error(prefix + sqlite3_errmsg(db));
}

/// Runs a query whose rows `f` reads one by one; on failure returns an error
/// whose message is `prefix` plus SQLite's.
template <class F>
[[nodiscard]] caf::error query(sqlite3* db, const char* sql,
                               const std::string& prefix, F f) {
  statement stmt;
  if (sqlite3_prepare_v2(db, sql, -1, stmt.out(), nullptr) != SQLITE_OK)
    return store_error(prefix + sqlite3_errmsg(db));
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW)
    f(stmt.get());
  if (rc != SQLITE_DONE)
    return store_error(prefix + sqlite3_errmsg(db));
  return caf::none;
}

/// Runs a query of one integer (a count) into `out`; on failure returns an
/// error whose message is `prefix` plus SQLite's.
[[nodiscard]] caf::error query_int(sqlite3* db, const char* sql,
                                   const std::string& prefix, uint64_t& out) {
  return query(db, sql, prefix, [&](sqlite3_stmt* stmt) {
    out = from_sql(sqlite3_column_int64(stmt, 0));
  });
}

/// Returns whether the database holds any table, view or index: an empty
/// file is a new store, anything else must prove to be a troupe store.
[[nodiscard]] caf::expected<bool> has_schema(sqlite3* db,
                                             const std::string& path) {
  auto prefix = "cannot read store " + path + ": ";
  // The first read of a file that is not SQLite fails with SQLITE_NOTADB.
  statement stmt;
  auto rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1,
                               stmt.out(), nullptr);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW)
    return sqlite3_column_int64(stmt.get(), 0) > 0;
  if ((rc & 0xff) == SQLITE_NOTADB)
    return store_error("store " + path
                       + " is not a troupe store: it is not an SQLite "
                         "database");
  return store_error(prefix + sqlite3_errmsg(db));
}

/// Checks that the database is a troupe store of this format version created
/// for `meta`.
[[nodiscard]] caf::error check_meta(sqlite3* db, const std::string& path,
                                    const store_meta& meta) {
  std::string format;
  sqlite3_int64 version = 0;
  store_meta found;
  auto read = [&](sqlite3_stmt* stmt) {
    auto key = column_text(stmt, 0);
    if (key == "format")
      format = column_text(stmt, 1);
    else if (key == "version")
      version = sqlite3_column_int64(stmt, 1);
    else if (key == "queue")
      found.queue = column_text(stmt, 1);
    else if (key == "task_type")
      found.task_type = column_text(stmt, 1);
    else if (key == "result_type")
      found.result_type = column_text(stmt, 1);
  };
  auto prefix = "cannot read store " + path + ": ";
  uint64_t tables = 0;
  if (auto err = query_int(db,
                           "SELECT count(*) FROM sqlite_master"
                           " WHERE type = 'table' AND name = 'meta'",
                           prefix, tables))
    return err;
  if (tables == 0)
    return store_error("store " + path
                       + " is not a troupe store: it is an SQLite database "
                         "without troupe's meta table");
  if (auto err = query(db, "SELECT key, value FROM meta", prefix, read))
    return err;
  if (format != format_name)
    return store_error("store " + path
                       + " is not a troupe store: its meta table does not "
                         "name the format "
                       + quote(format_name));
  if (version != format_version)
    return store_error("store " + path + " has format version "
                       + std::to_string(version)
                       + ", but this build of troupe reads version "
                       + std::to_string(format_version));
  std::vector<std::string> diffs;
  if (found.queue != meta.queue)
    diffs.emplace_back("queue name");
  if (found.task_type != meta.task_type)
    diffs.emplace_back("task type");
  if (found.result_type != meta.result_type)
    diffs.emplace_back("result type");
  if (diffs.empty())
    return caf::none;
  std::string what = diffs[0];
  for (size_t i = 1; i < diffs.size(); ++i)
    what += (i + 1 < diffs.size() ? ", " : " and ") + diffs[i];
  return store_error("store " + path + " was created for " + describe(found)
                     + ", not " + describe(meta) + ": the " + what
                     + (diffs.size() == 1 ? " differs" : " differ"));
}

/// Creates the tables and meta rows of a new store, unless another process
/// won the race to do so.
[[nodiscard]] caf::error create_schema(sqlite3* db, const std::string& path,
                                       const store_meta& meta) {
  auto prefix = "cannot create store " + path + ": ";
  if (auto err = exec(db, "BEGIN IMMEDIATE", prefix))
    return err;
  auto err = exec(db, schema_sql, prefix);
  if (!err) {
    statement stmt;
    auto ok = sqlite3_prepare_v2(db,
                                 "INSERT INTO meta(key, value) VALUES(?1, ?2)"
                                 " ON CONFLICT(key) DO NOTHING",
                                 -1, stmt.out(), nullptr)
              == SQLITE_OK;
    auto put = [&](const char* key, auto value) {
      sqlite3_bind_text(stmt.get(), 1, key, -1, SQLITE_STATIC);
      if constexpr (std::is_same_v<decltype(value), sqlite3_int64>)
        sqlite3_bind_int64(stmt.get(), 2, value);
      else
        sqlite3_bind_text(stmt.get(), 2, value, -1, SQLITE_TRANSIENT);
      auto rc = sqlite3_step(stmt.get());
      sqlite3_reset(stmt.get());
      return rc == SQLITE_DONE;
    };
    ok = ok && put("format", format_name)
         && put("version", sqlite3_int64{format_version})
         && put("queue", meta.queue.c_str())
         && put("task_type", meta.task_type.c_str())
         && put("result_type", meta.result_type.c_str())
         && put("closed", sqlite3_int64{0});
    if (!ok)
      err = store_error(prefix + sqlite3_errmsg(db));
  }
  if (!err)
    return exec(db, "COMMIT", prefix);
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  return err;
}

/// Gives a store created before task keys existed their column and index.
[[nodiscard]] caf::error add_keys(sqlite3* db, const std::string& path) {
  auto prefix = "cannot upgrade store " + path + ": ";
  uint64_t columns = 0;
  if (auto err = query_int(db,
                           "SELECT count(*) FROM pragma_table_info('tasks')"
                           " WHERE name = 'key'",
                           prefix, columns))
    return err;
  if (columns == 0)
    if (auto err = exec(db, "ALTER TABLE tasks ADD COLUMN key TEXT", prefix))
      return err;
  return exec(db, key_index_sql, prefix);
}

/// Reads everything `open` reports, in one read transaction so that all of it
/// comes from the same snapshot.
[[nodiscard]] caf::error read_contents(sqlite3* db, const std::string& path,
                                       store_contents& out) {
  auto prefix = "cannot read store " + path + ": ";
  out = store_contents{};
  if (auto err = exec(db, "BEGIN", prefix))
    return err;
  // Runs the queries in order until one fails; returns its error.
  caf::error err;
  auto run = [&](const char* sql, auto f) {
    if (!err)
      err = query(db, sql, prefix, f);
  };
  auto count = [&](const char* sql, uint64_t& x) {
    if (!err)
      err = query_int(db, sql, prefix, x);
  };
  uint64_t closed = 0;
  uint64_t last_result = 0;
  run("SELECT id, payload, attempts FROM tasks WHERE NOT EXISTS"
      " (SELECT 1 FROM results WHERE results.id = tasks.id) ORDER BY id",
      [&](sqlite3_stmt* stmt) {
        stored_task x;
        x.id = from_sql(sqlite3_column_int64(stmt, 0));
        x.payload = column_blob(stmt, 1);
        x.attempts = static_cast<uint32_t>(sqlite3_column_int64(stmt, 2));
        out.pending.emplace_back(std::move(x));
      });
  run("SELECT id, ok, payload, error, attempts FROM results"
      " WHERE consumed = 0 ORDER BY id",
      [&](sqlite3_stmt* stmt) {
        out.unconsumed.emplace_back(read_result(stmt));
      });
  count("SELECT coalesce(max(id), 0) FROM tasks", out.last_id);
  count("SELECT coalesce(max(id), 0) FROM results", last_result);
  count("SELECT count(*) FROM tasks", out.tasks);
  count("SELECT count(*) FROM results", out.results);
  count("SELECT count(*) FROM results WHERE ok = 0", out.dead);
  count("SELECT count(*) FROM results WHERE consumed != 0", out.consumed);
  count("SELECT value FROM meta WHERE key = 'closed'", closed);
  sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  if (err)
    return err;
  // A result names a task the store holds; taking the larger one anyway keeps
  // ids unique should a future version drop finished tasks.
  out.last_id = std::max(out.last_id, last_result);
  out.closed = closed != 0;
  return caf::none;
}

} // namespace

task_store::task_store(sqlite3* db, std::string path, int lock_fd)
    : db_(db), path_(std::move(path)), lock_fd_(lock_fd) {
  // nop
}

task_store::~task_store() {
  // Closing with a transaction open rolls it back: only `commit` makes
  // writes durable, as if the process had been killed here.
  if (!sqlite3_get_autocommit(db_))
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  for (auto* stmt : statements_)
    sqlite3_finalize(stmt);
  sqlite3_close(db_);
  ::close(lock_fd_); // releases the lock
}

namespace {

// Takes the store's owner lock: an exclusive flock on `PATH.lock` (released
// when the process ends, however it ends), which holds the owner's pid.
// Returns the locked descriptor, or the error naming the holder.
caf::expected<int> lock_store(const std::string& path) {
  auto lock_path = path + ".lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return store_error("cannot open store " + path + ": cannot create "
                       + lock_path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    auto saved = errno;
    char buf[32] = {};
    auto n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    if (saved != EWOULDBLOCK)
      return store_error("cannot lock store " + path + " (" + lock_path
                         + "): " + std::strerror(saved));
    std::string holder = n > 0 ? std::string{buf, static_cast<size_t>(n)} : "";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' '))
      holder.pop_back();
    return store_error(
      "store " + path + " is in use by another master"
      + (holder.empty() ? std::string{} : " (pid " + holder + ")")
      + ": a store has one owner; stop that one first, or "
        "give this master another --store");
  }
  // The pid is for messages only: the lock holds whether it is written or
  // not.
  auto pid = std::to_string(::getpid()) + "\n";
  [[maybe_unused]] auto truncated = ::ftruncate(fd, 0);
  [[maybe_unused]] auto written = ::pwrite(fd, pid.data(), pid.size(), 0);
  return fd;
}

} // namespace

caf::expected<std::unique_ptr<task_store>>
task_store::open(const std::string& path, const store_meta& meta,
                 store_contents& contents) {
  auto lock_fd = lock_store(path);
  if (!lock_fd)
    return std::move(lock_fd.error());
  sqlite3* db = nullptr;
  auto flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (auto rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
      rc != SQLITE_OK) {
    auto err = store_error(
      "cannot open store " + path + ": "
      + (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    sqlite3_close(db);
    ::close(*lock_fd);
    return err;
  }
  // From here on the destructor closes `db` and the lock.
  std::unique_ptr<task_store> store{new task_store(db, path, *lock_fd)};
  sqlite3_busy_timeout(db, busy_timeout_ms);
  // Check a file that already holds tables before changing anything in it.
  auto existing = has_schema(db, path);
  if (!existing)
    return std::move(existing.error());
  if (*existing)
    if (auto err = check_meta(db, path, meta))
      return err;
  // WAL: a commit appends to the log, and a crash loses only transactions
  // without a commit record. NORMAL syncs at checkpoints, not on every commit:
  // a committed transaction survives a killed process (the log is in the
  // OS's page cache), though not necessarily a power cut.
  std::string mode;
  auto setup_prefix = "cannot set up store " + path + ": ";
  if (auto err
      = query(db, "PRAGMA journal_mode = WAL", setup_prefix,
              [&](sqlite3_stmt* stmt) { mode = column_text(stmt, 0); }))
    return err;
  if (mode != "wal")
    return store_error(setup_prefix + "journal mode is " + mode + ", not wal");
  if (auto err = exec(db, "PRAGMA synchronous = NORMAL", setup_prefix))
    return err;
  if (!*existing) {
    if (auto err = create_schema(db, path, meta))
      return err;
    if (auto err = check_meta(db, path, meta))
      return err;
  }
  if (auto err = add_keys(db, path))
    return err;
  store->statements_.reserve(statement_count);
  for (auto* sql : statement_sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt,
                           nullptr)
        != SQLITE_OK)
      return store_error("store " + path
                         + " is corrupt: " + sqlite3_errmsg(db));
    store->statements_.push_back(stmt);
  }
  if (auto err = read_contents(db, path, contents))
    return err;
  return store;
}

bool task_store::begin() {
  if (!failure_.empty())
    return false;
  if (in_transaction_)
    return true;
  if (!run(statements_[begin_stmt], "begin a transaction", 0))
    return false;
  in_transaction_ = true;
  return true;
}

bool task_store::run(sqlite3_stmt* stmt, const char* what, uint64_t id) {
  if (auto rc = sqlite3_step(stmt); rc == SQLITE_DONE) {
    sqlite3_reset(stmt);
    return true;
  }
  failure_ = "store " + path_ + ": cannot " + what;
  if (id != 0)
    failure_ += " " + std::to_string(id);
  failure_ += ": ";
  failure_ += sqlite3_errmsg(db_);
  sqlite3_reset(stmt);
  return false;
}

uint64_t task_store::add_task(uint64_t id, const std::string& payload,
                              const std::string& key) {
  if (!begin())
    return 0;
  auto* stmt = statements_[key.empty() ? add_task_stmt : add_keyed_task_stmt];
  sqlite3_bind_int64(stmt, 1, to_sql(id));
  bind_blob(stmt, 2, payload);
  if (key.empty())
    return run(stmt, "add task", id) ? id : 0;
  sqlite3_bind_text64(stmt, 3, key.data(), key.size(), SQLITE_STATIC,
                      SQLITE_UTF8);
  if (!run(stmt, "add task", id))
    return 0;
  if (sqlite3_changes(db_) > 0)
    return id;
  // The key was taken: find its task (one writer, the owner, so nothing
  // came in between).
  auto* find = statements_[find_key_stmt];
  sqlite3_bind_text64(find, 1, key.data(), key.size(), SQLITE_STATIC,
                      SQLITE_UTF8);
  auto rc = sqlite3_step(find);
  uint64_t found
    = rc == SQLITE_ROW ? from_sql(sqlite3_column_int64(find, 0)) : 0;
  sqlite3_reset(find);
  if (found == 0)
    failure_
      = "store " + path_ + ": cannot look up the task of key '" + key
        + "': " + (rc == SQLITE_DONE ? "not found" : sqlite3_errmsg(db_));
  return found;
}

void task_store::set_attempts(uint64_t id, uint32_t attempts) {
  if (!begin())
    return;
  auto* stmt = statements_[set_attempts_stmt];
  sqlite3_bind_int64(stmt, 1, to_sql(id));
  sqlite3_bind_int64(stmt, 2, attempts);
  run(stmt, "set the attempts of task", id);
}

bool task_store::add_result(const stored_result& result) {
  if (!begin())
    return false;
  auto* stmt = statements_[add_result_stmt];
  sqlite3_bind_int64(stmt, 1, to_sql(result.id));
  sqlite3_bind_int(stmt, 2, result.ok ? 1 : 0);
  bind_blob(stmt, 3, result.payload);
  sqlite3_bind_text64(stmt, 4, result.error.data(), result.error.size(),
                      SQLITE_STATIC, SQLITE_UTF8);
  sqlite3_bind_int64(stmt, 5, result.attempts);
  return run(stmt, "add the result of task", result.id)
         && sqlite3_changes(db_) > 0;
}

void task_store::mark_consumed(uint64_t id) {
  if (!begin())
    return;
  auto* stmt = statements_[mark_consumed_stmt];
  sqlite3_bind_int64(stmt, 1, to_sql(id));
  run(stmt, "mark as consumed the result of task", id);
}

void task_store::close_queue() {
  if (!begin())
    return;
  run(statements_[close_queue_stmt], "close the queue", 0);
}

caf::error task_store::commit() {
  if (failure_.empty()) {
    if (!in_transaction_)
      return caf::none;
    auto* stmt = statements_[commit_stmt];
    auto rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc == SQLITE_DONE) {
      in_transaction_ = false;
      return caf::none;
    }
    failure_ = "cannot commit to store " + path_ + ": " + sqlite3_errmsg(db_);
  }
  // SQLite rolls back by itself after some errors (I/O, disk full).
  if (!sqlite3_get_autocommit(db_)) {
    auto* stmt = statements_[rollback_stmt];
    sqlite3_step(stmt);
    sqlite3_reset(stmt);
  }
  in_transaction_ = false;
  auto what = std::move(failure_);
  what += " (the uncommitted writes are rolled back)";
  failure_.clear();
  return store_error(std::move(what));
}

std::vector<stored_result> task_store::dead_letters() {
  // Having no way to report it, a read error (which only I/O trouble or
  // corruption causes) ends the list early.
  std::vector<stored_result> result;
  auto* stmt = statements_[dead_letters_stmt];
  while (sqlite3_step(stmt) == SQLITE_ROW)
    result.emplace_back(read_result(stmt));
  sqlite3_reset(stmt);
  return result;
}

} // namespace troupe::queue::detail
