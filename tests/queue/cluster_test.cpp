// task_master and task_worker on separate "hosts": Linux network namespaces
// on one bridge, mutual TLS with a cluster key, and a worker whose link is
// cut until both ends have noticed. A cut connection does not close: each
// end notices only when nothing, not even a heartbeat (every 500 ms), has
// arrived on it for CAF's connection timeout (3 s; see `net_config`). Needs
// root (CAP_NET_ADMIN); otherwise each test says why and exits 77, which
// CTest reports as skipped. Topology:
//
//   trq<pid>s:  bridge br0, ports p1..pN
//     p1 -- eth0 in trq<pid>m    10.231.0.1  task_master --bind 10.231.0.1
//     p2 -- eth0 in trq<pid>w1   10.231.0.2  task_worker (its link is cut)
//     p3 -- eth0 in trq<pid>w2   10.231.0.3  task_worker
//     p4 -- eth0 in trq<pid>w3   10.231.0.4  task_worker
//
// Every link is created inside the namespaces (nothing in the root
// namespace), no namespace has a default route, and all programs run inside
// them, so no packet can leave the machine. Deleting the namespaces removes
// the bridge and the veth pairs with them.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <stdlib.h>
#include <unistd.h>

#include "process.hpp"
#include "queue_test_util.hpp"

namespace troupe::test {

namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

// Generous: CI also runs the suite under AddressSanitizer.
constexpr milliseconds patience = 90s;

using args = std::vector<std::string>;

// Returns the path of `ip` (iproute2), or an empty string.
std::string find_ip() {
  for (auto path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
    if (::access(path, X_OK) == 0)
      return path;
  return {};
}

// A LAN of network namespaces: a switch namespace holding the bridge `br0`,
// and one namespace per host whose `eth0` is a port of that bridge, host `i`
// (from 0) at 10.231.0.`i+1`/24. Names are `trq<pid><tag>s` for the switch
// and `trq<pid><tag><host>` for the hosts, so concurrent test processes do
// not collide. The destructor deletes the namespaces, also after a failed
// `REQUIRE`; `set_up` first deletes leftovers of a crashed run.
class netns_lan {
public:
  netns_lan(const netns_lan&) = delete;
  netns_lan& operator=(const netns_lan&) = delete;

  // Plans the namespaces; creates nothing yet.
  netns_lan(const std::string& tag, std::vector<std::string> hosts)
      : ip_(find_ip()), prefix_("trq" + std::to_string(::getpid()) + tag),
        hosts_(std::move(hosts)) {
    // Host `i` is port `p<i+1>` on the switch; the names must not clash.
    for (auto& h : hosts_)
      REQUIRE(h != "s");
  }

  ~netns_lan() {
    tear_down();
  }

  // Creates the LAN. Returns an empty string on success, otherwise why not;
  // sets `unsupported` if this machine cannot do it at all (not root, no
  // `ip`, or `ip netns add` fails), so the test should be skipped.
  std::string set_up(bool& unsupported) {
    unsupported = true;
    if (::geteuid() != 0)
      return "not root: network namespaces need CAP_NET_ADMIN";
    if (ip_.empty())
      return "iproute2's 'ip' is not installed";
    tear_down();
    auto sw = switch_ns();
    if (auto err = ip({"netns", "add", sw}); !err.empty())
      return err;
    unsupported = false;
    for (auto& h : hosts_)
      if (auto err = ip({"netns", "add", ns(h)}); !err.empty())
        return err;
    std::vector<args> steps{{"-n", sw, "link", "add", "br0", "type", "bridge"},
                            {"-n", sw, "link", "set", "br0", "up"}};
    for (size_t i = 0; i < hosts_.size(); ++i) {
      auto h = ns(hosts_[i]);
      auto port = "p" + std::to_string(i + 1);
      auto addr = this->addr(hosts_[i]) + "/24";
      steps.insert(steps.end(),
                   {{"-n", sw, "link", "add", port, "type", "veth", "peer",
                     "name", "eth0", "netns", h},
                    {"-n", sw, "link", "set", port, "master", "br0"},
                    {"-n", sw, "link", "set", port, "up"},
                    {"-n", h, "addr", "add", addr, "dev", "eth0"},
                    {"-n", h, "link", "set", "eth0", "up"},
                    {"-n", h, "link", "set", "lo", "up"}});
    }
    for (auto& step : steps)
      if (auto err = ip(step); !err.empty())
        return err;
    return {};
  }

  // Deletes whichever of the namespaces exist.
  void tear_down() {
    if (ip_.empty())
      return;
    std::vector<std::string> names{switch_ns()};
    for (auto& h : hosts_)
      names.push_back(ns(h));
    for (auto& name : names)
      if (::access(("/run/netns/" + name).c_str(), F_OK) == 0)
        ip({"netns", "del", name});
  }

  // Returns the namespace of `host`.
  std::string ns(const std::string& host) const {
    return prefix_ + host;
  }

  // Returns the address of `host`.
  std::string addr(const std::string& host) const {
    return "10.231.0." + std::to_string(index(host) + 1);
  }

  // Unplugs (`up == false`) or plugs in the cable of `host`: sets its port
  // on the switch down or up. Returns an empty string or why it failed.
  std::string plug(const std::string& host, bool up) {
    return ip({"-n", switch_ns(), "link", "set",
               "p" + std::to_string(index(host) + 1), up ? "up" : "down"});
  }

  // Returns the command line that runs `argv` in the namespace of `host`.
  args exec(const std::string& host, const args& argv) const {
    args xs{ip_, "netns", "exec", ns(host)};
    xs.insert(xs.end(), argv.begin(), argv.end());
    return xs;
  }

private:
  std::string switch_ns() const {
    return prefix_ + "s";
  }

  size_t index(const std::string& host) const {
    for (size_t i = 0; i < hosts_.size(); ++i)
      if (hosts_[i] == host)
        return i;
    FAIL("no host " << host << " in the LAN");
    return 0;
  }

  // Runs `ip xs...`; returns an empty string on success, otherwise the
  // command and what it printed.
  std::string ip(const args& xs) const {
    args argv{ip_};
    argv.insert(argv.end(), xs.begin(), xs.end());
    auto r = run_process(argv, 30s);
    if (r.exit_code == 0)
      return {};
    std::string cmd;
    for (auto& x : argv)
      cmd += (cmd.empty() ? "" : " ") + x;
    return "'" + cmd + "' failed (exit " + std::to_string(r.exit_code)
           + "): " + r.err;
  }

  std::string ip_;
  std::string prefix_;
  std::vector<std::string> hosts_;
};

// The exit code that tells CTest a test was skipped (SKIP_RETURN_CODE in
// tests/queue/CMakeLists.txt); only this program's tests use it.
constexpr int skip_exit_code = 77;

// Sets up `lan`. If the machine cannot (not root, no `ip`), says why and
// ends the process with `skip_exit_code`, so that CTest reports the test as
// skipped, not passed; fails the test if setup breaks midway.
bool set_up_or_skip(netns_lan& lan) {
  bool unsupported = false;
  auto err = lan.set_up(unsupported);
  if (err.empty())
    return true;
  if (unsupported) {
    std::cout << "skipped: cannot create network namespaces: " << err
              << std::endl;
    std::exit(skip_exit_code);
  }
  FAIL("setting up the network namespaces: " << err);
  return false;
}

// Returns the number after "listening on ...:" in the first line of `out`.
uint16_t listening_port(const std::string& out) {
  auto line = lines(out).front();
  return static_cast<uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
}

// Returns N of the summary's "N redelivered", or -1 if there is none.
long long redelivered(const std::string& out) {
  auto end = out.find(" redelivered");
  if (end == std::string::npos)
    return -1;
  auto begin = out.rfind(' ', end - 1);
  return std::stoll(out.substr(begin + 1, end - begin - 1));
}

// Returns the number of occurrences of `text` in `str`.
size_t count(const std::string& str, const std::string& text) {
  size_t n = 0;
  for (auto i = str.find(text); i != std::string::npos;
       i = str.find(text, i + text.size()))
    ++n;
  return n;
}

// Milliseconds since `t0`, for the timeline.
long long since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<milliseconds>(
           std::chrono::steady_clock::now() - t0)
    .count();
}

} // namespace

TEST_CASE("a worker cut off for a few seconds is dropped and its tasks go to "
          "the others - it rejoins and every result arrives exactly once",
          "[task_queue][cluster]") {
  netns_lan lan{"", {"m", "w1", "w2", "w3"}};
  if (!set_up_or_skip(lan))
    return;
  key_dir keys;
  // Long enough that the cut worker is back before the end: ~15 s with
  // three workers at ~90 tasks/s each, of which the cut costs ~1/3 for ~6 s.
  constexpr int n_tasks = 4000;
  auto master = std::make_unique<child_process>(lan.exec(
    "m", {bin("task_master"), "--troupe.log-level=info", "--bind",
          lan.addr("m"), "--port", "0", "--tasks", std::to_string(n_tasks),
          "--authkey-file", keys.key(), "--timeout", "60s"}));
  REQUIRE(
    master->wait_for_stdout("listening on " + lan.addr("m") + ":", patience));
  REQUIRE(master->wait_for_stdout("\n", patience));
  auto where
    = lan.addr("m") + ":" + std::to_string(listening_port(master->out()));
  std::vector<std::unique_ptr<child_process>> workers;
  for (auto name : {"w1", "w2", "w3"})
    workers.push_back(std::make_unique<child_process>(lan.exec(
      name, {bin("task_worker"), "--troupe.name", name,
             "--troupe.log-level=info", "--connect", where, "--authkey-file",
             keys.key(), "--quiet", "--work", "10ms"})));
  auto& cut = *workers[0];
  // w1 holds leases once it joined and results flow.
  REQUIRE(master->wait_for_stderr("worker w1 joined", patience));
  REQUIRE(master->wait_for_count("Result: ", 200, patience));
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(lan.plug("w1", false) == "");
  // The outage lasts until both ends noticed (~3 s connection timeout).
  REQUIRE(master->wait_for_stderr("worker w1 lost", patience));
  auto master_noticed = since(t0);
  REQUIRE(cut.wait_for_stderr("lost the master at " + where, patience));
  auto worker_noticed = since(t0);
  REQUIRE(lan.plug("w1", true) == "");
  auto plugged_in = since(t0);
  REQUIRE(cut.wait_for_stderr(
    "joined queue 'tasks' at " + where + " after failed attempts", patience));
  auto rejoined = since(t0);
  auto results_at_rejoin = count(master->out(), "Result: ");
  auto m = master->wait(patience);
  UNSCOPED_INFO("timeline after the cut: master noticed by "
                << master_noticed << " ms, worker by " << worker_noticed
                << " ms, link up at " << plugged_in << " ms, rejoined by "
                << rejoined << " ms (" << results_at_rejoin << " of " << n_tasks
                << " results in), master done at " << since(t0) << " ms");
  UNSCOPED_INFO("master's stderr:\n" << m.err);
  CHECK(m.exit_code == 0);
  auto put = puts(m.out);
  CHECK(put.size() == n_tasks);
  auto got = results(m.out);
  CHECK(got.size() == n_tasks);
  CHECK(distinct(got));
  CHECK(as_set(got) == as_set(put));
  CHECK(redelivered(m.out) > 0);
  CHECK_THAT(m.out, Catch::EndsWith("master exit.\n"));
  // The master dropped w1 because of the cut, with leases, and no other
  // worker: each worker's connect starts with a TCP probe whose failed TLS
  // handshake once made CAF drop healthy connections (see runtime/src/net.cpp).
  CHECK_THAT(m.err, Catch::Contains("worker w1 lost (exit_reason("
                                    "remote_link_unreachable)); redelivering"));
  CHECK_THAT(m.err, !Catch::Contains("redelivering its 0 task"));
  auto lost_at = m.err.find("worker w1 lost");
  CHECK(m.err.find("worker w1 joined", lost_at) != std::string::npos);
  CHECK_THAT(m.err, !Catch::Contains("worker w2 lost")
                      && !Catch::Contains("worker w3 lost"));
  for (auto& w : workers) {
    auto r = w->wait(patience);
    UNSCOPED_INFO("worker's stderr:\n" << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out == "Connect to server " + where + "...\nworker exit.\n");
  }
}

TEST_CASE("off loopback a node without the cluster key is refused with a "
          "clear reason and a master without it does not start",
          "[task_queue][cluster]") {
  netns_lan lan{"x", {"m", "w"}};
  if (!set_up_or_skip(lan))
    return;
  key_dir keys;
  // No key and no --insecure: neither program talks plain TCP off loopback.
  auto r = run_process(
    lan.exec("m", {bin("task_master"), "--bind", lan.addr("m"), "--port", "0"}),
    patience);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("refusing plain TCP on " + lan.addr("m")));
  r = run_process(
    lan.exec("w", {bin("task_worker"), "--connect", lan.addr("m") + ":5000"}),
    patience);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("refusing plain TCP on " + lan.addr("m")));
  // A TLS master; a worker with --insecure but no key is turned away.
  child_process master{
    lan.exec("m", {bin("task_master"), "--troupe.log-level=warn", "--bind",
                   lan.addr("m"), "--port", "0", "--tasks", "1",
                   "--authkey-file", keys.key(), "--timeout", "60s"})};
  REQUIRE(
    master.wait_for_stdout("listening on " + lan.addr("m") + ":", patience));
  REQUIRE(master.wait_for_stdout("\n", patience));
  auto where
    = lan.addr("m") + ":" + std::to_string(listening_port(master.out()));
  r = run_process(lan.exec("w", {bin("task_worker"), "--connect", where,
                                 "--insecure", "--max-refusals", "1"}),
                  patience);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("requires TLS"));
  // The master is unharmed: a worker with the key does the task.
  r = run_process(lan.exec("w", {bin("task_worker"), "--connect", where,
                                 "--authkey-file", keys.key()}),
                  patience);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::EndsWith("worker exit.\n"));
  auto m = master.wait(patience);
  CHECK(m.exit_code == 0);
  CHECK(results(m.out).size() == 1);
}

} // namespace troupe::test
