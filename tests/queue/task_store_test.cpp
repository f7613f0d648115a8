#include "task_store.hpp"

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "troupe/queue/errc.hpp"
#include "troupe/runtime/errc.hpp"

namespace troupe::queue::detail {

namespace {

/// A fresh directory under /tmp, removed with everything in it.
struct temp_dir {
  temp_dir() {
    char pattern[] = "/tmp/troupe-task-store-XXXXXX";
    if (mkdtemp(pattern) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }

  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }

  std::string file(const std::string& name) const {
    return path + "/" + name;
  }

  std::string path;
};

/// The fixture of most tests: a store path in a fresh directory.
struct store_fixture {
  temp_dir dir;
  std::string path = dir.file("queue.db");
  store_meta meta{"tasks", "int64_t", "std::string"};
  store_contents contents;

  /// Opens the store at `path`, failing the test if that fails.
  std::unique_ptr<task_store> open() {
    contents = store_contents{};
    auto result = task_store::open(path, meta, contents);
    INFO((result ? std::string{} : error_text(result.error())));
    REQUIRE(result);
    REQUIRE(*result != nullptr);
    return std::move(*result);
  }

  /// Commits, failing the test if that fails.
  void commit(task_store& store) {
    auto err = store.commit();
    // `error_text` needs an error: an empty one has no context to read.
    INFO((err ? error_text(err) : std::string{}));
    REQUIRE(!err);
  }
};

/// Returns the text of the error `open` failed with, or an empty string if
/// it succeeded.
std::string text_of(const caf::expected<std::unique_ptr<task_store>>& x) {
  return x ? std::string{} : error_text(x.error());
}

stored_result ok_result(uint64_t id, std::string payload,
                        uint32_t attempts = 1) {
  stored_result x;
  x.id = id;
  x.ok = true;
  x.payload = std::move(payload);
  x.attempts = attempts;
  return x;
}

stored_result dead_result(uint64_t id, std::string error, uint32_t attempts) {
  stored_result x;
  x.id = id;
  x.ok = false;
  x.error = std::move(error);
  x.attempts = attempts;
  return x;
}

std::vector<uint64_t> ids(const std::vector<stored_task>& xs) {
  std::vector<uint64_t> result;
  for (auto& x : xs)
    result.push_back(x.id);
  return result;
}

std::vector<uint64_t> ids(const std::vector<stored_result>& xs) {
  std::vector<uint64_t> result;
  for (auto& x : xs)
    result.push_back(x.id);
  return result;
}

std::vector<uint64_t> range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> result;
  for (auto i = first; i <= last; ++i)
    result.push_back(i);
  return result;
}

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out{path, std::ios::binary};
  out << content;
}

/// Runs SQL on `path` with SQLite directly; returns the first column of each
/// row, or the error message prefixed with "error: ".
std::vector<std::string> sql(const std::string& path, const char* text) {
  std::vector<std::string> rows;
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  auto add = [](void* out, int, char** values, char**) {
    static_cast<std::vector<std::string>*>(out)->emplace_back(
      values[0] != nullptr ? values[0] : "NULL");
    return 0;
  };
  char* msg = nullptr;
  if (sqlite3_exec(db, text, add, &rows, &msg) != SQLITE_OK) {
    rows.assign(1, std::string{"error: "} + msg);
    sqlite3_free(msg);
  }
  sqlite3_close(db);
  return rows;
}

} // namespace

TEST_CASE_METHOD(store_fixture, "a new store is empty", "[queue][task_store]") {
  auto store = open();
  CHECK(store->path() == path);
  CHECK(std::filesystem::exists(path));
  CHECK(contents.pending.empty());
  CHECK(contents.unconsumed.empty());
  CHECK(contents.last_id == 0);
  CHECK(contents.tasks == 0);
  CHECK(contents.results == 0);
  CHECK(contents.dead == 0);
  CHECK(contents.consumed == 0);
  CHECK_FALSE(contents.closed);
  CHECK(store->dead_letters().empty());
  SECTION("it uses the write-ahead log") {
    CHECK(sql(path, "PRAGMA journal_mode") == std::vector<std::string>{"wal"});
  }
  SECTION("committing nothing succeeds") {
    auto err = store->commit();
    CHECK(!err);
    CHECK(err == caf::none); // no error, hence no message
  }
}

TEST_CASE_METHOD(store_fixture,
                 "a reopened store holds what was committed before",
                 "[queue][task_store]") {
  const std::string binary{"\0\x01\xff payload", 11};
  {
    auto store = open();
    store->add_task(1, "one");
    store->add_task(2, binary);
    store->add_task(3, "three");
    store->add_task(4, "");
    store->add_task(5, "five");
    CHECK(store->add_result(ok_result(1, "result one")));
    CHECK(store->add_result(dead_result(3, "boom", 4)));
    store->mark_consumed(1);
    store->set_attempts(2, 3);
    store->close_queue();
    commit(*store);
  }
  auto store = open();
  CHECK(ids(contents.pending) == std::vector<uint64_t>{2, 4, 5});
  REQUIRE(contents.pending.size() == 3);
  CHECK(contents.pending[0].payload == binary);
  CHECK(contents.pending[0].attempts == 3);
  CHECK(contents.pending[1].payload.empty());
  CHECK(contents.pending[1].attempts == 0);
  CHECK(contents.pending[2].payload == "five");
  REQUIRE(ids(contents.unconsumed) == std::vector<uint64_t>{3});
  CHECK_FALSE(contents.unconsumed[0].ok);
  CHECK(contents.unconsumed[0].error == "boom");
  CHECK(contents.unconsumed[0].attempts == 4);
  CHECK(contents.last_id == 5);
  CHECK(contents.tasks == 5);
  CHECK(contents.results == 2);
  CHECK(contents.dead == 1);
  CHECK(contents.consumed == 1);
  CHECK(contents.closed);
  SECTION("the last id stays when every task is done and taken") {
    for (uint64_t id : {2, 4, 5})
      CHECK(store->add_result(ok_result(id, "r" + std::to_string(id))));
    for (uint64_t id : {2, 3, 4, 5})
      store->mark_consumed(id);
    commit(*store);
    store.reset();
    store = open();
    CHECK(contents.pending.empty());
    CHECK(contents.unconsumed.empty());
    CHECK(contents.last_id == 5);
    CHECK(contents.tasks == 5);
    CHECK(contents.results == 5);
    CHECK(contents.consumed == 5);
  }
  SECTION("unconsumed results come back in id order with their payloads") {
    CHECK(store->add_result(ok_result(5, "result five", 2)));
    CHECK(store->add_result(ok_result(4, "", 1)));
    commit(*store);
    store.reset();
    store = open();
    CHECK(ids(contents.pending) == std::vector<uint64_t>{2});
    REQUIRE(ids(contents.unconsumed) == std::vector<uint64_t>{3, 4, 5});
    CHECK(contents.unconsumed[1].ok);
    CHECK(contents.unconsumed[1].payload.empty());
    CHECK(contents.unconsumed[2].payload == "result five");
    CHECK(contents.unconsumed[2].attempts == 2);
    CHECK(contents.unconsumed[2].error.empty());
  }
}

TEST_CASE_METHOD(store_fixture, "set_attempts is persisted",
                 "[queue][task_store]") {
  {
    auto store = open();
    store->add_task(1, "a");
    store->add_task(2, "b");
    commit(*store);
    store->set_attempts(1, 1);
    store->set_attempts(2, 5);
    commit(*store);
    store->set_attempts(1, 2); // the latest committed value wins
    commit(*store);
    store->set_attempts(2, 9); // never committed
  }
  auto store = open();
  REQUIRE(contents.pending.size() == 2);
  CHECK(contents.pending[0].attempts == 2);
  CHECK(contents.pending[1].attempts == 5);
}

TEST_CASE_METHOD(store_fixture,
                 "a killed process loses exactly its uncommitted writes",
                 "[queue][task_store]") {
  // The child commits tasks 1-100 and results 1-10, then writes far more than
  // SQLite's page cache holds without committing, so that uncommitted pages
  // spill into the log, and kills itself.
  auto pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Child: no Catch2 here; report trouble through the exit code.
    store_contents found;
    auto opened = task_store::open(path, meta, found);
    if (!opened || *opened == nullptr)
      _exit(2);
    auto store = std::move(*opened);
    for (uint64_t id = 1; id <= 100; ++id)
      store->add_task(id, "task " + std::to_string(id));
    for (uint64_t id = 1; id <= 10; ++id)
      store->add_result(ok_result(id, "result " + std::to_string(id)));
    if (auto err = store->commit())
      _exit(3);
    const std::string big(64 * 1024, 'x');
    for (uint64_t id = 101; id <= 300; ++id)
      store->add_task(id, big);
    for (uint64_t id = 11; id <= 20; ++id)
      store->add_result(ok_result(id, "lost"));
    store->mark_consumed(1);
    store->set_attempts(50, 7);
    store->close_queue();
    raise(SIGKILL);
    _exit(4);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  INFO("child status " << status);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  // The log survived the kill, uncommitted frames included.
  CHECK(std::filesystem::file_size(path + "-wal") > 4 * 1024 * 1024);
  auto store = open();
  CHECK(ids(contents.pending) == range(11, 100));
  CHECK(contents.pending.front().payload == "task 11");
  CHECK(contents.pending[50 - 11].attempts == 0);
  CHECK(ids(contents.unconsumed) == range(1, 10));
  CHECK(contents.unconsumed.back().payload == "result 10");
  CHECK(contents.last_id == 100);
  CHECK(contents.tasks == 100);
  CHECK(contents.results == 10);
  CHECK(contents.consumed == 0);
  CHECK_FALSE(contents.closed);
  CHECK(sql(path, "PRAGMA integrity_check") == std::vector<std::string>{"ok"});
  // The ids of the lost tasks are free again.
  store->add_task(101, "again");
  commit(*store);
  store.reset();
  open();
  CHECK(contents.last_id == 101);
  CHECK(contents.pending.back().payload == "again");
}

TEST_CASE_METHOD(store_fixture,
                 "a task key is stored once - within a batch and after a "
                 "reopen",
                 "[queue][task_store]") {
  {
    auto store = open();
    CHECK(store->add_task(1, "one", "k1") == 1);
    CHECK(store->add_task(2, "unkeyed") == 2);
    CHECK(store->add_task(3, "other", "k1") == 1); // same batch
    CHECK(store->add_task(3, "three", "k3") == 3);
    commit(*store);
  }
  auto store = open();
  CHECK(contents.tasks == 3);
  CHECK(store->add_task(4, "again", "k3") == 3);
  CHECK(store->add_task(4, "four", "k4") == 4);
  CHECK(store->add_task(5, "unkeyed too") == 5);
  commit(*store);
  store.reset();
  open();
  CHECK(contents.tasks == 5);
  REQUIRE(contents.pending.size() == 5);
  CHECK(contents.pending[0].payload == "one");
  CHECK(contents.pending[2].payload == "three");
}

TEST_CASE_METHOD(store_fixture,
                 "a store made before task keys gets their column on open",
                 "[queue][task_store]") {
  open();
  REQUIRE(sql(path, "DROP INDEX tasks_key;"
                    "ALTER TABLE tasks DROP COLUMN key;"
                    "INSERT INTO tasks(id, payload) VALUES(1, 'old')")
            .empty());
  auto store = open();
  REQUIRE(contents.pending.size() == 1);
  CHECK(contents.pending[0].payload == "old");
  CHECK(store->add_task(2, "new", "k") == 2);
  CHECK(store->add_task(3, "dup", "k") == 2);
  commit(*store);
}

TEST_CASE_METHOD(store_fixture, "destroying a store rolls back its batch",
                 "[queue][task_store]") {
  {
    auto store = open();
    store->add_task(1, "kept");
    commit(*store);
    store->add_task(2, "dropped");
    store->close_queue();
  }
  open();
  CHECK(ids(contents.pending) == std::vector<uint64_t>{1});
  CHECK_FALSE(contents.closed);
}

TEST_CASE_METHOD(store_fixture, "a task gets at most one result",
                 "[queue][task_store]") {
  auto store = open();
  store->add_task(1, "a");
  CHECK(store->add_result(ok_result(1, "first")));
  CHECK_FALSE(store->add_result(ok_result(1, "second in the same batch")));
  commit(*store);
  CHECK_FALSE(store->add_result(dead_result(1, "in the next batch", 3)));
  commit(*store);
  CHECK(store->dead_letters().empty());
  store.reset();
  open();
  REQUIRE(contents.unconsumed.size() == 1);
  CHECK(contents.unconsumed[0].ok);
  CHECK(contents.unconsumed[0].payload == "first");
  CHECK(contents.results == 1);
  CHECK(contents.pending.empty());
}

TEST_CASE_METHOD(store_fixture, "dead letters are listed in id order",
                 "[queue][task_store]") {
  {
    auto store = open();
    for (uint64_t id = 1; id <= 6; ++id)
      store->add_task(id, "t");
    CHECK(store->add_result(dead_result(5, "five failed", 3)));
    CHECK(store->add_result(ok_result(1, "fine")));
    CHECK(store->add_result(dead_result(2, "two failed", 1)));
    // Uncommitted dead letters are listed too: the batch is the store's.
    CHECK(ids(store->dead_letters()) == std::vector<uint64_t>{2, 5});
    commit(*store);
    store->mark_consumed(2);
    commit(*store);
  }
  auto store = open();
  CHECK(contents.dead == 2);
  auto dead = store->dead_letters();
  REQUIRE(ids(dead) == std::vector<uint64_t>{2, 5});
  CHECK_FALSE(dead[0].ok);
  CHECK(dead[0].error == "two failed");
  CHECK(dead[0].attempts == 1);
  CHECK(dead[1].error == "five failed");
  CHECK(dead[1].attempts == 3);
  CHECK(ids(contents.unconsumed) == std::vector<uint64_t>{1, 5});
}

TEST_CASE_METHOD(store_fixture,
                 "a store created for another queue or type is refused",
                 "[queue][task_store]") {
  {
    auto store = open();
    store->add_task(1, "a");
    commit(*store);
  }
  auto before = read_file(path);
  auto other = meta;
  std::string expected;
  SECTION("another queue name") {
    other.queue = "jobs";
    expected = "store " + path
               + " was created for queue 'tasks' (task type int64_t, result "
                 "type std::string), not queue 'jobs' (task type int64_t, "
                 "result type std::string): the queue name differs";
  }
  SECTION("another task type") {
    other.task_type = "std::string";
    expected = "store " + path
               + " was created for queue 'tasks' (task type int64_t, result "
                 "type std::string), not queue 'tasks' (task type "
                 "std::string, result type std::string): the task type "
                 "differs";
  }
  SECTION("other task and result types") {
    other.task_type = "double";
    other.result_type = "double";
    expected = "store " + path
               + " was created for queue 'tasks' (task type int64_t, result "
                 "type std::string), not queue 'tasks' (task type double, "
                 "result type double): the task type and result type differ";
  }
  auto store = task_store::open(path, other, contents);
  CHECK_FALSE(store);
  CHECK(text_of(store) == expected);
  CHECK(read_file(path) == before);
}

TEST_CASE_METHOD(store_fixture, "a file that is not a troupe store is refused",
                 "[queue][task_store]") {
  std::string before;
  SECTION("a text file") {
    before = "these are not the tasks you are looking for\n";
    write_file(path, before);
    auto store = task_store::open(path, meta, contents);
    CHECK_FALSE(store);
    CHECK(text_of(store)
          == "store " + path
               + " is not a troupe store: it is not an SQLite database");
  }
  SECTION("a large binary file") {
    for (int i = 0; i < 8192; ++i)
      before.push_back(static_cast<char>(i * 7));
    write_file(path, before);
    auto store = task_store::open(path, meta, contents);
    CHECK_FALSE(store);
    CHECK(text_of(store)
          == "store " + path
               + " is not a troupe store: it is not an SQLite database");
  }
  SECTION("an SQLite database of something else") {
    REQUIRE(sql(path, "CREATE TABLE people(name TEXT)").empty());
    before = read_file(path);
    auto store = task_store::open(path, meta, contents);
    CHECK_FALSE(store);
    CHECK(text_of(store)
          == "store " + path
               + " is not a troupe store: it is an SQLite database without "
                 "troupe's meta table");
  }
  SECTION("an SQLite database with a meta table of its own") {
    REQUIRE(sql(path, "CREATE TABLE meta(key TEXT, value);"
                      "INSERT INTO meta VALUES('format', 'other')")
              .empty());
    before = read_file(path);
    auto store = task_store::open(path, meta, contents);
    CHECK_FALSE(store);
    CHECK(text_of(store)
          == "store " + path
               + " is not a troupe store: its meta table does not name the "
                 "format 'troupe.task_store'");
  }
  SECTION("a troupe store of another format version") {
    open();
    REQUIRE(
      sql(path, "UPDATE meta SET value = 99 WHERE key = 'version'").empty());
    before = read_file(path);
    auto store = task_store::open(path, meta, contents);
    CHECK_FALSE(store);
    CHECK(text_of(store)
          == "store " + path
               + " has format version 99, but this build of troupe reads "
                 "version 1");
  }
  // The refused file is left as it was.
  CHECK(read_file(path) == before);
}

TEST_CASE_METHOD(store_fixture, "a store that cannot be opened is reported",
                 "[queue][task_store]") {
  path = dir.file("no/such/dir/queue.db");
  auto store = task_store::open(path, meta, contents);
  CHECK_FALSE(store);
  if (!store)
    CHECK(store.error() == errc::store_failed);
  CHECK(text_of(store)
        == "cannot open store " + path + ": cannot create " + path
             + ".lock: No such file or directory");
}

TEST_CASE_METHOD(store_fixture,
                 "a store has one owner: a second open fails naming the "
                 "holder's pid, and succeeds once the first is closed",
                 "[queue][task_store]") {
  auto first = open();
  store_contents other;
  auto second = task_store::open(path, meta, other);
  REQUIRE_FALSE(second);
  CHECK(second.error() == errc::store_failed);
  CHECK(text_of(second)
        == "store " + path + " is in use by another master (pid "
             + std::to_string(::getpid())
             + "): a store has one owner; stop that one first, or give this "
               "master another --store");
  first.reset();
  auto third = open();
  CHECK(third != nullptr);
}

TEST_CASE_METHOD(store_fixture, "commit reports a failed write",
                 "[queue][task_store]") {
  auto store = open();
  store->add_task(1, "kept");
  commit(*store);
  store->add_task(2, "dropped with its batch");
  store->add_task(1, "a duplicate id");
  store->add_task(3, "dropped after the failure");
  CHECK_FALSE(store->add_result(ok_result(2, "dropped too")));
  auto err = store->commit();
  CHECK(err);
  CHECK(error_text(err)
        == "store " + path
             + ": cannot add task 1: UNIQUE constraint failed: tasks.id (the "
               "uncommitted writes are rolled back)");
  SECTION("the next batch starts afresh") {
    store->add_task(2, "two");
    commit(*store);
    store.reset();
    open();
    CHECK(ids(contents.pending) == std::vector<uint64_t>{1, 2});
    CHECK(contents.pending[1].payload == "two");
  }
  SECTION("nothing of the failed batch is stored") {
    store.reset();
    open();
    CHECK(ids(contents.pending) == std::vector<uint64_t>{1});
    CHECK(contents.results == 0);
  }
}

} // namespace troupe::queue::detail
