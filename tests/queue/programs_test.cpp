// task_master and task_worker as processes on 127.0.0.1 with OS-chosen ports:
// seed 002's output, 10,000 tasks over three workers with one of them
// killed, and a master killed and restarted on its store.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "process.hpp"
#include "queue_test_util.hpp"

namespace troupe::test {

namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

// Generous: CI also runs the suite under AddressSanitizer.
constexpr milliseconds patience = 60s;

using args = std::vector<std::string>;

// Starts task_master with `extra` arguments on an OS-chosen port (unless
// `extra` names one) and returns it once it printed its address.
std::unique_ptr<child_process> start_master(const args& extra, uint16_t& port) {
  // --timeout: the master gives up when no result comes for that long; the
  // tests hold results back on purpose (and run under ASan on a busy box).
  args argv{bin("task_master"), "--troupe.log-level=warn", "--timeout", "60s"};
  bool has_port = false;
  for (auto& x : extra)
    has_port = has_port || x == "--port";
  if (!has_port)
    argv.insert(argv.end(), {"--port", "0"});
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto p = std::make_unique<child_process>(argv);
  REQUIRE(p->wait_for_stdout("listening on 127.0.0.1:", patience));
  REQUIRE(p->wait_for_stdout("\n", patience));
  auto line = lines(p->out()).front();
  port = static_cast<uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
  REQUIRE(port != 0);
  return p;
}

// Returns how often `what` occurs in `text`.
size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (auto i = text.find(what); i != std::string::npos;
       i = text.find(what, i + what.size()))
    ++n;
  return n;
}

std::unique_ptr<child_process> start_worker(uint16_t port,
                                            const args& extra = {}) {
  args argv{bin("task_worker"), "--troupe.log-level=warn", "--connect",
            "127.0.0.1:" + std::to_string(port)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return std::make_unique<child_process>(argv);
}

} // namespace

TEST_CASE("seed 002: one master - one worker - ten tasks",
          "[task_queue][programs]") {
  uint16_t port = 0;
  auto master = start_master({"--tasks", "10"}, port);
  auto worker = start_worker(port);
  auto m = master->wait(patience);
  auto w = worker->wait(patience);
  CHECK(m.exit_code == 0);
  CHECK(w.exit_code == 0);
  auto out = lines(m.out);
  REQUIRE(out.size() == 1 + 10 + 1 + 10 + 2);
  CHECK(out[0] == "listening on 127.0.0.1:" + std::to_string(port));
  CHECK(out[11] == "Try get results...");
  CHECK_THAT(out[22], Catch::StartsWith("summary: 10 results of 10 tasks"));
  CHECK(out[23] == "master exit.");
  auto put = puts(m.out);
  REQUIRE(put.size() == 10);
  CHECK(distinct(put));
  auto got = results(m.out);
  CHECK(as_set(got) == as_set(put));
  auto wout = lines(w.out);
  REQUIRE(wout.size() == 12);
  CHECK(wout.front()
        == "Connect to server 127.0.0.1:" + std::to_string(port) + "...");
  CHECK(wout.back() == "worker exit.");
  for (size_t i = 1; i < 11; ++i)
    CHECK_THAT(wout[i], Catch::StartsWith("run task "));
}

TEST_CASE("10000 tasks over three workers and one of them killed: every result "
          "exactly once",
          "[task_queue][programs]") {
  uint16_t port = 0;
  auto master = start_master({"--tasks", "10000"}, port);
  std::vector<std::unique_ptr<child_process>> workers;
  for (int i = 0; i < 3; ++i)
    workers.push_back(start_worker(port, {"--quiet", "--work", "1ms"}));
  REQUIRE(master->wait_for_stdout("Result: ", patience));
  workers[0]->send_signal(SIGKILL);
  auto m = master->wait(patience);
  CHECK(m.exit_code == 0);
  auto put = puts(m.out);
  REQUIRE(put.size() == 10000);
  auto got = results(m.out);
  CHECK(got.size() == 10000);
  CHECK(distinct(got));
  CHECK(as_set(got) == as_set(put));
  // The killed worker held leases, which went to the others.
  CHECK_THAT(m.out, !Catch::Contains(" 0 redelivered"));
  CHECK_THAT(m.out, Catch::Contains("master exit."));
  auto killed = workers[0]->wait(patience);
  CHECK(killed.term_signal == SIGKILL);
  for (size_t i = 1; i < workers.size(); ++i) {
    auto w = workers[i]->wait(patience);
    CHECK(w.exit_code == 0);
    CHECK_THAT(w.out, Catch::EndsWith("worker exit.\n"));
  }
}

TEST_CASE("a master killed with SIGKILL resumes from its store - workers "
          "reconnect - nothing is lost",
          "[task_queue][programs]") {
  temp_store tmp;
  auto& store = tmp.path;
  uint16_t port = 0;
  auto first = start_master({"--tasks", "10000", "--store", store}, port);
  std::vector<std::unique_ptr<child_process>> workers;
  for (int i = 0; i < 3; ++i)
    workers.push_back(start_worker(port, {"--quiet", "--work", "1ms"}));
  REQUIRE(first->wait_for_count("Result: ", 500, patience));
  first->send_signal(SIGKILL);
  auto r1 = first->wait(patience);
  REQUIRE(r1.term_signal == SIGKILL);
  r1.out = whole_lines(r1.out);
  auto put = puts(r1.out);
  REQUIRE(put.size() == 10000);
  auto got1 = results(r1.out);
  CHECK(distinct(got1));
  // Same port, same store: the workers come back by themselves.
  uint16_t port2 = 0;
  auto second = start_master(
    {"--port", std::to_string(port), "--tasks", "10000", "--store", store},
    port2);
  REQUIRE(port2 == port);
  auto r2 = second->wait(patience);
  CHECK(r2.exit_code == 0);
  CHECK_THAT(r2.out, Catch::Contains("Resuming 10000 tasks from " + store));
  CHECK(puts(r2.out).empty());
  auto got2 = results(r2.out);
  CHECK(distinct(got2));
  // Every task has its result in one of the runs; a result printed just
  // before the kill, but not yet acknowledged, is printed again.
  auto all = as_set(got1);
  all.insert(got2.begin(), got2.end());
  CHECK(all == as_set(put));
  // Acknowledgements are committed with the next fetch of up to 1024
  // results (README, "What survives a crash"): no more can come back.
  auto again = got1.size() + got2.size() - all.size();
  UNSCOPED_INFO("results printed in both runs: " << again);
  CHECK(again <= 1024);
  for (auto& w : workers) {
    auto res = w->wait(patience);
    CHECK(res.exit_code == 0);
    CHECK_THAT(res.out, Catch::EndsWith("worker exit.\n"));
  }
}

TEST_CASE("a master killed while it puts its tasks puts the missing ones when "
          "restarted - every task reaches the application once",
          "[task_queue][programs]") {
  // Killed after its first batch, in the middle, and after the last.
  auto kill_after = GENERATE(size_t{1}, size_t{2500}, size_t{5000});
  CAPTURE(kill_after);
  temp_store tmp;
  auto& store = tmp.path;
  args argv{"--tasks", "5000", "--store", store};
  uint16_t port = 0;
  auto first = start_master(argv, port);
  REQUIRE(first->wait_for_count("Put task ", kill_after, patience));
  first->send_signal(SIGKILL);
  auto r1 = first->wait(patience);
  REQUIRE(r1.term_signal == SIGKILL);
  r1.out = whole_lines(r1.out);
  auto put1 = puts(r1.out);
  REQUIRE(put1.size() >= kill_after);
  // The same arguments again, now with a worker.
  auto second = start_master(argv, port);
  auto worker = start_worker(port, {"--quiet"});
  auto r2 = second->wait(patience);
  CHECK(r2.exit_code == 0);
  auto put2 = puts(r2.out);
  auto got = results(r2.out);
  CHECK(got.size() == 5000);
  CHECK(distinct(got));
  CHECK_THAT(r2.out, Catch::Contains("summary: 5000 results of 5000 tasks"));
  // No task was put twice: each put line names another number, and each
  // has its one result. (A batch committed just before the kill may have
  // had its lines cut off, so put1 and put2 may hold fewer than 5000.)
  auto all_put = put1;
  all_put.insert(all_put.end(), put2.begin(), put2.end());
  CHECK(distinct(all_put));
  auto got_set = as_set(got);
  for (auto x : all_put)
    CHECK(got_set.count(x) == 1);
  if (put1.size() < 5000)
    CHECK_THAT(r2.out, Catch::Contains("tasks that the earlier master had "
                                       "not put."));
  auto w = worker->wait(patience);
  CHECK(w.exit_code == 0);
}

TEST_CASE("a master stopped by SIGINT with results missing exits 130 - a "
          "worker stopped by SIGTERM before its queue closed exits 143",
          "[task_queue][programs]") {
  uint16_t port = 0;
  auto master = start_master({"--tasks", "20"}, port);
  REQUIRE(master->wait_for_stdout("Try get results...", patience));
  master->send_signal(SIGINT);
  auto m = master->wait(patience);
  CHECK(m.exit_code == 130);
  CHECK_THAT(m.err, Catch::Contains("interrupted: 20 of 20 results missing"));
  CHECK_THAT(m.out, !Catch::Contains("master exit."));
  // A worker whose master is gone keeps trying to reconnect: SIGTERM ends it
  // with its work undone.
  auto worker = start_worker(port);
  REQUIRE(worker->wait_for_stdout("Connect to server", patience));
  worker->send_signal(SIGTERM);
  auto w = worker->wait(patience);
  CHECK(w.exit_code == 143);
  CHECK_THAT(w.out, !Catch::Contains("worker exit."));
}

TEST_CASE("a second master on the same store is refused, naming the first",
          "[task_queue][programs]") {
  temp_store tmp;
  auto& store = tmp.path;
  uint16_t port = 0;
  auto first = start_master({"--tasks", "20", "--store", store}, port);
  auto second = run_process(
    {bin("task_master"), "--port", "0", "--tasks", "20", "--store", store},
    patience);
  CHECK(second.exit_code == 1);
  CHECK_THAT(second.err, Catch::Contains("store " + store
                                         + " is in use by another master "
                                           "(pid "
                                         + std::to_string(first->pid()) + ")"));
  CHECK(puts(second.out).empty());
  // The first one is undisturbed: a worker gets its 20 tasks done.
  auto w = start_worker(port, {"--quiet"});
  auto m = first->wait(patience);
  CHECK(m.exit_code == 0);
  CHECK(results(m.out).size() == 20);
  CHECK(w->wait(patience).exit_code == 0);
}

TEST_CASE("task_master and task_worker reject bad options with a clear message",
          "[task_queue][programs]") {
  auto r = run_process({bin("task_master"), "--tasks", "0"}, patience);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("--tasks must be at least 1"));
  r = run_process({bin("task_master"), "--bind", "0.0.0.0", "--port", "0"},
                  patience);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("refusing plain TCP on 0.0.0.0"));
  r = run_process({bin("task_worker"), "--connect", "nonsense"}, patience);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("'nonsense' is not HOST:PORT"));
  r = run_process({bin("task_master"), "--help"}, patience);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out,
             Catch::Contains("--authkey-file") && Catch::Contains("--store"));
}

TEST_CASE("a worker that cannot reach its master says why once and exits 1 "
          "after --give-up-after, saying so",
          "[task_queue][programs]") {
  // A port that nobody listens on: bind one, then let it go.
  uint16_t port = 0;
  {
    auto probe = start_master({"--tasks", "1"}, port);
    probe->send_signal(SIGKILL);
    probe->wait(patience);
  }
  auto where = "127.0.0.1:" + std::to_string(port);
  auto r = run_process({bin("task_worker"), "--troupe.log-level=warn",
                        "--connect", where, "--give-up-after", "2s"},
                       patience);
  CHECK(r.exit_code == 1);
  CHECK(r.elapsed >= 1900ms);
  // Several attempts (100 ms doubling), one line for their one reason.
  auto reason = "cannot reach " + where + ": connection refused";
  CHECK(count(r.err, reason) == 2); // the warning, and the last attempt
  CHECK_THAT(r.err,
             Catch::Contains("[warning] worker: " + reason + "; retrying"));
  CHECK_THAT(r.err,
             Catch::Contains("[error] worker: giving up: no master at " + where
                             + " for 2s (give_up_after, "
                               "--give-up-after); last attempt: "
                             + reason));
  CHECK_THAT(r.out, !Catch::Contains("worker exit."));
  r = run_process({bin("task_worker"), "--give-up-after", "2"}, patience);
  CHECK(r.exit_code == 2);
  r = run_process({bin("task_worker"), "--max-refusals", "0"}, patience);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("--max-refusals must be at least 1"));
  r = run_process({bin("task_worker"), "--help"}, patience);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("--max-refusals")
                      && Catch::Contains("--give-up-after <timespan>")
                      && Catch::Contains("Exits 0 when the master closes"));
}

TEST_CASE("a worker that missed the close of a restarted master still hears "
          "it and exits 0",
          "[task_queue][programs]") {
  temp_store tmp;
  auto& store = tmp.path;
  uint16_t port = 0;
  auto first = start_master({"--tasks", "20", "--store", store}, port);
  auto away = start_worker(
    port, {"--quiet", "--work", "50ms", "--prefetch", "1", "--fixed-window"});
  REQUIRE(first->wait_for_stdout("Result: ", patience));
  // The master dies while the worker is away (stopped: as if in a long
  // backoff, or cut off) ...
  away->send_signal(SIGSTOP);
  first->send_signal(SIGKILL);
  REQUIRE(first->wait(patience).term_signal == SIGKILL);
  // ... and a restarted master finishes without it and closes the queue.
  uint16_t port2 = 0;
  auto second = start_master(
    {"--port", std::to_string(port), "--tasks", "20", "--store", store}, port2);
  REQUIRE(port2 == port);
  auto helper = start_worker(port, {"--quiet"});
  auto h = helper->wait(patience);
  REQUIRE(h.exit_code == 0); // told that the queue is closed
  // Back now: the worker learns that the queue is closed and exits 0.
  away->send_signal(SIGCONT);
  auto w = away->wait(patience);
  UNSCOPED_INFO("worker's stderr:\n" << w.err);
  CHECK(w.exit_code == 0);
  CHECK_THAT(w.out, Catch::EndsWith("worker exit.\n"));
  auto m = second->wait(patience);
  CHECK(m.exit_code == 0);
  CHECK_THAT(m.out, Catch::Contains("master exit."));
}

TEST_CASE("a library worker of other types is refused: its await_worker "
          "returns why, it logs it at error level, and so does the master",
          "[task_queue][programs]") {
  uint16_t port = 0;
  auto master = start_master({"--tasks", "1"}, port);
  auto r = run_process({bin("troupe_worker_probe"), "--troupe.log-level=warn",
                        "--connect", "127.0.0.1:" + std::to_string(port),
                        "--int-results"},
                       patience);
  CHECK(r.exit_code == 1);
  // int64_t and std::string as CAF names them.
  auto why = "runs tasks long -> long, but queue 'tasks' holds long -> std::";
  CHECK_THAT(r.out, Catch::StartsWith("worker error: ") && Catch::Contains(why)
                      && Catch::Contains("refused 3 times in a row"));
  CHECK_THAT(r.err, Catch::Contains("[error] worker: refused (1 of 3)")
                      && Catch::Contains("[error] worker: giving up")
                      && Catch::Contains(why));
  // The master logged each refusal, and still serves the right workers.
  auto good = start_worker(port, {"--quiet"});
  CHECK(good->wait(patience).exit_code == 0);
  auto m = master->wait(patience);
  CHECK(m.exit_code == 0);
  CHECK(count(m.err, "[error] queue 'tasks': refused worker ") == 3);
  CHECK_THAT(m.err, Catch::Contains(why));
}

TEST_CASE("a task that throws reaches the master with the exception's text - "
          "nothing from CAF on stderr",
          "[task_queue][programs]") {
  uint16_t port = 0;
  auto master = start_master({"--tasks", "2", "--max-attempts", "2"}, port);
  auto r = run_process({bin("troupe_worker_probe"), "--connect",
                        "127.0.0.1:" + std::to_string(port), "--throw"},
                       patience);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("queue closed"));
  CHECK_THAT(r.err, !Catch::Contains("unhandled exception")
                      && !Catch::Contains("***"));
  auto m = master->wait(patience);
  CHECK(m.exit_code == 0);
  auto put = puts(m.out);
  REQUIRE(put.size() == 2);
  for (auto x : put)
    CHECK_THAT(m.out, Catch::Contains(" after 2 attempts: no luck with "
                                      + std::to_string(x) + "\n"));
  CHECK_THAT(m.err, !Catch::Contains("unhandled exception"));
}

} // namespace troupe::test

namespace troupe::test {

TEST_CASE("with a cluster key: mutual TLS - a wrong key - no key - garbage and "
          "an oversized BASP header are refused - and nothing is lost",
          "[task_queue][programs][tls]") {
  key_dir keys;
  auto key = keys.key();
  auto other = keys.make_key("other.key");
  uint16_t port = 0;
  auto master = start_master({"--tasks", "200", "--authkey-file", key}, port);
  auto where = "127.0.0.1:" + std::to_string(port);
  // Random bytes, then a BASP header announcing a 4 GiB payload: without
  // TLS, CAF 0.17 would allocate it before any handshake.
  std::string noise(100000, '\0');
  std::mt19937 gen{42};
  for (auto& c : noise)
    c = static_cast<char>(gen());
  CHECK(send_raw(port, noise));
  std::string header(32, '\0');
  header[0] = 1;                                          // server handshake
  header[4] = header[5] = header[6] = header[7] = '\xff'; // payload_len
  CHECK(send_raw(port, header));
  CHECK(rss_kib(master->pid()) < 512 * 1024);
  // A worker of another cluster, and one without a key: refused, with the
  // reason on the worker's side, at error level; after --max-refusals
  // (default 3) identical refusals it exits 1.
  auto wrong
    = run_process({bin("task_worker"), "--connect", where, "--authkey-file",
                   other, "--connect-timeout", "20s"},
                  patience);
  CHECK(wrong.exit_code == 1);
  CHECK_THAT(wrong.err, Catch::Contains("not signed by our cluster CA"));
  CHECK_THAT(wrong.err, Catch::Contains("[error] worker: refused (1 of 3)")
                          && Catch::Contains("[error] worker: refused (2 of 3)")
                          && Catch::Contains("[error] worker: giving up: ")
                          && Catch::Contains("refused 3 times in a row"));
  CHECK_THAT(wrong.out, !Catch::Contains("worker exit."));
  auto none = run_process({bin("task_worker"), "--connect", where,
                           "--max-refusals", "1", "--connect-timeout", "20s"},
                          patience);
  CHECK(none.exit_code == 1);
  CHECK_THAT(none.err, Catch::Contains("requires TLS"));
  CHECK_THAT(none.err, Catch::Contains("(refused 1 time;")
                         && !Catch::Contains("worker: refused (1 of"));
  // The master kept serving: the right key gets every task done.
  auto good = run_process(
    {bin("task_worker"), "--connect", where, "--authkey-file", key, "--quiet"},
    patience);
  CHECK(good.exit_code == 0);
  CHECK_THAT(good.out, Catch::EndsWith("worker exit.\n"));
  auto m = master->wait(patience);
  CHECK(m.exit_code == 0);
  auto got = results(m.out);
  CHECK(got.size() == 200);
  CHECK(distinct(got));
  CHECK(as_set(got) == as_set(puts(m.out)));
}

TEST_CASE("failed TLS handshakes on the port do not drop a connected worker",
          "[task_queue][programs][tls]") {
  // CAF 0.17 leaves OpenSSL's error queue dirty after a failed handshake,
  // which used to make the next read of a healthy connection fail (see
  // runtime/src/net.cpp).
  key_dir keys;
  auto key = keys.key();
  uint16_t port = 0;
  auto master = start_master({"--tasks", "1000", "--authkey-file", key}, port);
  auto worker = start_worker(port, {"--authkey-file", key, "--quiet", "--work",
                                    "5ms", "--prefetch", "4"});
  REQUIRE(master->wait_for_stdout("Result: ", patience));
  for (int i = 0; i < 30; ++i)
    ::close(connect_loopback(port));
  auto m = master->wait(patience);
  CHECK(m.exit_code == 0);
  CHECK(results(m.out).size() == 1000);
  CHECK_THAT(m.out, Catch::Contains(" 0 redelivered"));
  CHECK(worker->wait(patience).exit_code == 0);
}

TEST_CASE("a key file that others can read - or a missing one - stops the "
          "program before it starts",
          "[task_queue][programs][tls]") {
  key_dir keys;
  auto key = keys.key();
  REQUIRE(::chmod(key.c_str(), 0644) == 0);
  auto r = run_process(
    {bin("task_master"), "--port", "0", "--authkey-file", key}, patience);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("chmod 600"));
  r = run_process(
    {bin("task_worker"), "--authkey-file", keys.dir() + "/missing.key"},
    patience);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains(keys.dir() + "/missing.key"));
}

} // namespace troupe::test
