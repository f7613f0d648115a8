// Shows network I/O without a thread per connection: one broker fetches the
// response headers of several HTTP servers at once, all on the middleman's one
// I/O thread, and a slow server delays only its own lines.
//
//   main --hosts--> wget broker --connect, "GET /"--> server 1 .. n
//   server i --header lines--> wget broker --"HOST:PORT header > ..."--> stdout
//   wget broker --number of failed hosts--> main              (the exit code)
//
// From seed 003: asyncio's `wget(host)` coroutines, one per host, run by one
// event loop. The broker plays the event loop: it starts every connect, sends
// each server `GET /` and prints the header lines as they arrive.
//
// CAF 0.17 connects only with a blocking `connect()` (its middleman's
// `connect` waits for the kernel, up to minutes for a silent host), so the
// broker connects by itself: a non-blocking `connect()` per host, a `poll()`
// that never waits, repeated every 10 ms while connects are pending, and
// `add_scribe(fd)` to hand CAF each connected socket. Each host has a deadline
// (`--timeout`, a delayed message to the broker); a refused, hung or silent
// host gets an error line and the others go on. Limitation: host names are
// resolved before the broker starts, one after another (getaddrinfo blocks).
//
// Exit code: 0 if every host answered, 1 if any failed, 2 for bad arguments.
//
// Expected output (`wget 127.0.0.1:8080 127.0.0.1:8081`, with
// `python3 -m http.server --bind 127.0.0.1 8080` running and 8081 closed):
// wget 127.0.0.1:8080...
// wget 127.0.0.1:8081...
// 127.0.0.1:8081 error > connection refused
// 127.0.0.1:8080 header > HTTP/1.0 200 OK
// 127.0.0.1:8080 header > Server: SimpleHTTP/0.6 Python/3.11.7
// 127.0.0.1:8080 header > Date: Mon, 23 Nov 2026 20:12:33 GMT
// 127.0.0.1:8080 header > Content-type: text/html; charset=utf-8
// 127.0.0.1:8080 header > Content-Length: 187

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_ostream.hpp>
#include <caf/io/broker.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "troupe/runtime/run.hpp"

namespace {

struct config : troupe::config {
  caf::timespan timeout = std::chrono::seconds(5);
  config() {
    load<caf::io::middleman>();
    opt_group{custom_options_, "global"}.add(
      timeout, "timeout", "give up on a host after this long (default: 5s)");
    positional("HOST[:PORT]...");
    description("Fetches the response headers of HTTP servers at once, on one "
                "thread (seed 003).\nPORT defaults to 80. Exit code: 0 if "
                "every host answered, 1 if any failed, 2 for bad arguments.");
  }
};

// One socket address of a host, as getaddrinfo returns it.
struct address {
  sockaddr_storage addr;
  socklen_t len;
};

// A host to fetch the headers from.
struct target {
  std::string host;           // as given, for the Host header
  uint16_t port = 80;         // PORT
  std::string name;           // HOST:PORT, starts every output line
  std::vector<address> addrs; // tried in this order
  std::string error;          // set if the host cannot be resolved
};

// Progress of one host. Before it connects, `fd` is the socket of a pending
// non-blocking connect(), owned here; afterwards CAF owns it as `hdl`.
struct conn {
  target tgt;
  size_t next_addr = 0;
  int fd = -1;
  int last_errno = 0;
  std::optional<caf::io::connection_handle> hdl;
  std::string buf; // received, not yet printed
  bool done = false;
};

struct wget_state {
  std::vector<conn> conns;
  std::map<caf::io::connection_handle, size_t> by_hdl;
  size_t running = 0; // hosts not done yet
  size_t failed = 0;
  caf::actor listener; // gets `failed` at the end
  static inline const char* name = "wget";
  ~wget_state() {
    for (auto& c : conns)
      if (c.fd >= 0)
        ::close(c.fd);
  }
};

using wget_broker = caf::stateful_actor<wget_state, caf::io::broker>;

// Returns `x` as the user would write it, e.g. "2s" or "500ms".
std::string to_text(caf::timespan x) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(x).count();
  if (ms == 0)
    return std::to_string(
             std::chrono::duration_cast<std::chrono::microseconds>(x).count())
           + "us";
  if (ms % 1000 == 0)
    return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// Returns the text of `errno` value `err` in lower case: "connection refused".
std::string describe(int err) {
  std::string text = std::strerror(err);
  if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z')
    text[0] = static_cast<char>(text[0] - 'A' + 'a');
  return text;
}

// Ends host `i` (with an error line unless `error` is empty); the broker
// reports to the listener and quits once no host is left.
void finish(wget_broker* self, size_t i, const std::string& error) {
  auto& st = self->state;
  auto& c = st.conns[i];
  if (c.done)
    return;
  c.done = true;
  if (!error.empty()) {
    caf::aout(self) << c.tgt.name << " error > " << error << std::endl;
    ++st.failed;
  }
  if (c.fd >= 0) {
    ::close(c.fd);
    c.fd = -1;
  }
  if (c.hdl) {
    st.by_hdl.erase(*c.hdl);
    self->close(*c.hdl); // ignore the body, close the socket
  }
  if (--st.running == 0) {
    self->send(st.listener, st.failed);
    self->quit();
  }
}

// Sends `GET /` on the connected socket `fd` of host `i`; CAF owns it now.
void send_get(wget_broker* self, size_t i, int fd) {
  auto& c = self->state.conns[i];
  c.hdl = self->add_scribe(fd);
  self->state.by_hdl.emplace(*c.hdl, i);
  // The Host header names the port unless it is HTTP's default.
  auto host = c.tgt.port == 80 ? c.tgt.host : c.tgt.name;
  auto req = "GET / HTTP/1.0\r\nHost: " + host + "\r\n\r\n";
  auto& out = self->wr_buf(*c.hdl);
  out.insert(out.end(), req.begin(), req.end());
  self->flush(*c.hdl);
  self->configure_read(*c.hdl, caf::io::receive_policy::at_most(4096));
}

// Starts a non-blocking connect() to the next address of host `i`; gives up
// with the last error once none is left.
void connect_next(wget_broker* self, size_t i) {
  auto& c = self->state.conns[i];
  while (c.next_addr < c.tgt.addrs.size()) {
    auto& a = c.tgt.addrs[c.next_addr++];
    int fd = ::socket(a.addr.ss_family,
                      SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      c.last_errno = errno;
      continue;
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len) == 0)
      return send_get(self, i, fd);
    if (errno == EINPROGRESS) {
      c.fd = fd;
      return;
    }
    c.last_errno = errno;
    ::close(fd);
  }
  finish(self, i, describe(c.last_errno));
}

// Checks, without waiting, which pending connects have finished; the broker
// calls it again every 10 ms while any is pending.
void check_connects(wget_broker* self) {
  auto& st = self->state;
  std::vector<pollfd> fds;
  std::vector<size_t> ids;
  for (size_t i = 0; i < st.conns.size(); ++i)
    if (st.conns[i].fd >= 0) {
      fds.push_back(pollfd{st.conns[i].fd, POLLOUT, 0});
      ids.push_back(i);
    }
  if (!fds.empty() && ::poll(fds.data(), fds.size(), 0) > 0)
    for (size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0)
        continue;
      auto& c = st.conns[ids[k]];
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      c.fd = -1;
      if (err == 0) {
        send_get(self, ids[k], fds[k].fd);
      } else {
        ::close(fds[k].fd);
        c.last_errno = err;
        connect_next(self, ids[k]);
      }
    }
  if (std::any_of(st.conns.begin(), st.conns.end(),
                  [](const conn& c) { return c.fd >= 0; }))
    self->delayed_send(self, std::chrono::milliseconds(10), caf::tick_atom_v);
}

// Prints the complete header lines of host `i`; ends it at the blank line.
void print_lines(wget_broker* self, size_t i) {
  auto& c = self->state.conns[i];
  for (auto pos = c.buf.find('\n'); pos != std::string::npos;
       pos = c.buf.find('\n')) {
    auto line = c.buf.substr(0, pos);
    c.buf.erase(0, pos + 1);
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.empty())
      return finish(self, i, "");
    caf::aout(self) << c.tgt.name << " header > " << line << std::endl;
  }
  if (c.buf.size() > 65536)
    finish(self, i, "header line longer than 64 KiB");
}

// Fetches the header of every target at once and prints it; then sends
// `listener` the number of hosts that failed (`size_t`) and quits. Runs on the
// middleman's I/O thread, so no handler may block. Messaging interface:
// - `(tick_atom)`, from itself: checks the pending connects again.
// - `(timeout_atom, size_t i)`, from itself: the deadline of host `i`.
// - `new_data_msg`, `connection_closed_msg`, from CAF: a server's bytes, its
//   hang-up.
caf::behavior wget(wget_broker* self, std::vector<target> targets,
                   caf::timespan timeout, caf::actor listener) {
  auto& st = self->state;
  st.listener = std::move(listener);
  for (auto& t : targets) {
    caf::aout(self) << "wget " << t.name << "..." << std::endl;
    st.conns.emplace_back().tgt = std::move(t);
  }
  st.running = st.conns.size();
  for (size_t i = 0; i < st.conns.size(); ++i) {
    if (!st.conns[i].tgt.error.empty()) {
      finish(self, i, st.conns[i].tgt.error);
      continue;
    }
    // The deadline of this host: connect and header included.
    self->delayed_send(self, timeout, caf::timeout_atom_v, i);
    connect_next(self, i);
  }
  check_connects(self);
  return {
    [=](caf::tick_atom) { check_connects(self); },
    [=](caf::timeout_atom, size_t i) {
      auto& c = self->state.conns[i];
      finish(self, i,
             (c.hdl ? "no response within " : "no connection within ")
               + to_text(timeout));
    },
    [=](caf::io::new_data_msg& msg) {
      auto i = self->state.by_hdl.find(msg.handle);
      if (i == self->state.by_hdl.end())
        return;
      auto& c = self->state.conns[i->second];
      c.buf.append(msg.buf.begin(), msg.buf.end());
      print_lines(self, i->second);
    },
    [=](const caf::io::connection_closed_msg& msg) {
      auto i = self->state.by_hdl.find(msg.handle);
      if (i != self->state.by_hdl.end())
        finish(self, i->second, "connection closed before the header ended");
    },
  };
}

// Parses `HOST[:PORT]` (IPv6: `[ADDR]:PORT`); no value for an empty host or a
// port outside 1-65535.
std::optional<target> parse_target(const std::string& arg) {
  target t;
  std::string port = "80";
  auto colon = arg.rfind(':');
  if (!arg.empty() && arg[0] == '[') {
    auto end = arg.find(']');
    if (end == std::string::npos
        || (end + 1 < arg.size() && arg[end + 1] != ':'))
      return std::nullopt;
    t.host = arg.substr(1, end - 1);
    if (end + 1 < arg.size())
      port = arg.substr(end + 2);
  } else if (colon != arg.find(':')) {
    return std::nullopt; // an IPv6 address needs brackets
  } else if (colon != std::string::npos) {
    t.host = arg.substr(0, colon);
    port = arg.substr(colon + 1);
  } else {
    t.host = arg;
  }
  if (t.host.empty() || port.empty() || port.size() > 5
      || port.find_first_not_of("0123456789") != std::string::npos
      || std::stoi(port) < 1 || std::stoi(port) > 65535)
    return std::nullopt;
  t.port = static_cast<uint16_t>(std::stoi(port));
  auto shown
    = t.host.find(':') == std::string::npos ? t.host : "[" + t.host + "]";
  t.name = shown + ":" + std::to_string(t.port);
  return t;
}

// Looks up the addresses of `t` (blocking); sets `t.error` if there are none.
void resolve(target& t) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  auto port = std::to_string(t.port);
  if (::getaddrinfo(t.host.c_str(), port.c_str(), &hints, &res) != 0) {
    t.error = "cannot resolve host";
    return;
  }
  for (auto* ai = res; ai != nullptr; ai = ai->ai_next) {
    address a{};
    std::memcpy(&a.addr, ai->ai_addr, ai->ai_addrlen);
    a.len = ai->ai_addrlen;
    t.addrs.push_back(a);
  }
  ::freeaddrinfo(res);
}

} // namespace

int main(int argc, char** argv) {
  return troupe::run<config>(
    argc, argv, [](troupe::node& n, const config& cfg) {
      if (cfg.positional_args().empty()) {
        std::cerr << "Usage: wget [OPTIONS] HOST[:PORT]...\n"
                     "Try 'wget --help' for the options.\n";
        return 2;
      }
      if (cfg.timeout <= caf::timespan{0}) {
        std::cerr << "wget: option '--timeout' must be positive\n";
        return 2;
      }
      // Check every argument before resolving any host.
      std::vector<target> targets;
      for (auto& arg : cfg.positional_args()) {
        auto t = parse_target(arg);
        if (!t) {
          std::cerr << "wget: invalid host '" << arg
                    << "' (expected HOST[:PORT], PORT 1-65535)\n";
          return 2;
        }
        targets.push_back(std::move(*t));
      }
      // Host names are looked up here, one after another: getaddrinfo blocks,
      // and the broker must never block.
      for (auto& t : targets)
        resolve(t);
      // One broker for all hosts; main waits for its report.
      caf::scoped_actor self{n.system()};
      auto b = n.system().middleman().spawn_broker(
        wget, std::move(targets), cfg.timeout, caf::actor{self});
      n.track(caf::actor_cast<caf::actor_addr>(b));
      self->monitor(b);
      int rc = 1;
      self->receive([&](size_t failed) { rc = failed == 0 ? 0 : 1; },
                    [&](const caf::down_msg&) {}); // stopped by a signal
      return rc;
    });
}
