// The NATS client port: one thread with an epoll loop accepts clients, reads
// their operations (nats_parser.hpp) and turns them into the bus's
// publications and subscriptions; each subscription's callback, on the bus's
// threads, appends MSG frames to its client's output buffer and asks the loop
// to write it. See client_port.hpp.

#include "troupe/bus/client_port.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nlohmann/json.hpp>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "troupe/bus/bus.hpp"
#include "troupe/bus/subject.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/net.hpp"
#include "troupe/runtime/random_id.hpp"
#include "troupe/runtime/tcp.hpp"

#include "nats_parser.hpp"

namespace troupe::bus {

namespace {

using clock = std::chrono::steady_clock;

/// Bytes read from a socket at a time.
constexpr size_t read_chunk = 65536;

/// How often the loop looks for silent clients.
constexpr auto tick = std::chrono::milliseconds{500};

// Compares in time that depends on the lengths only, not on where the
// first difference is.
bool same_secret(std::string_view x, std::string_view y) {
  if (x.size() != y.size())
    return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < x.size(); ++i)
    diff |= static_cast<unsigned char>(x[i] ^ y[i]);
  return diff == 0;
}

} // namespace

// -- one client ---------------------------------------------------------------

namespace {

struct connection;

/// A subscription of a client; its callback holds it.
struct client_sub {
  std::string sid;
  bus_subscription handle;
  /// UNSUB with a count: deliver this many in all, then end (0: no limit).
  std::atomic<uint64_t> max{0};
  std::atomic<uint64_t> delivered{0};
};

struct connection {
  int fd = -1;
  uint64_t id = 0;
  detail::nats_parser parser;
  // -- loop thread only
  bool verbose = false;
  bool pedantic = false;
  bool authorized = false;
  clock::time_point opened;
  std::string name;
  std::map<std::string, std::shared_ptr<client_sub>, std::less<>> subs;
  clock::time_point last_read;
  uint32_t pings_out = 0;
  bool want_out = false; // EPOLLOUT registered
  // -- shared with the subscription callbacks, under `mtx`
  std::mutex mtx;
  std::string out;
  // Bytes ever appended to `out`, and ever written from it; the end (in
  // appended bytes) of each MSG frame not yet written in full, so that a
  // cut-off client's lost messages can be counted.
  uint64_t appended = 0;
  uint64_t sent = 0;
  std::deque<uint64_t> frame_ends;

  // Appends `bytes` to `out`; the caller holds `mtx`.
  void append(std::string_view bytes, bool frame = false) {
    out.append(bytes.data(), bytes.size());
    appended += bytes.size();
    if (frame)
      frame_ends.push_back(appended);
  }
  bool closing = false; // no more output is queued; close once written
  bool cut = false;     // close without writing what waits

  explicit connection(detail::nats_limits limits) : parser(limits) {
    // nop
  }
};

} // namespace

// -- the port -----------------------------------------------------------------

struct client_port::impl {
  bus& b;
  client_port_options opts;
  std::string server_id = troupe::to_hex(troupe::random_id());
  int listen_fd = -1;
  int epoll_fd = -1;
  int wake_fd = -1;
  // Held for the moment the process runs out of descriptors (see
  // `accept_all`).
  int spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  uint16_t port = 0;
  std::thread loop;
  std::atomic<bool> stopping{false};
  uint64_t next_id = 0;
  std::unordered_map<int, std::shared_ptr<connection>> conns;
  // Connections whose output the loop should write (posted by callbacks).
  std::mutex posted_mtx;
  std::vector<std::weak_ptr<connection>> posted;
  // Counters.
  std::atomic<uint64_t> clients{0};
  std::atomic<uint64_t> clients_total{0};
  std::atomic<uint64_t> in_msgs{0};
  std::atomic<uint64_t> in_bytes{0};
  std::atomic<uint64_t> out_msgs{0};
  std::atomic<uint64_t> out_bytes{0};
  std::atomic<uint64_t> slow_consumers{0};
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> protocol_errors{0};

  impl(bus& bus_ref, client_port_options o) : b(bus_ref), opts(std::move(o)) {
    // nop
  }

  ~impl() {
    stopping = true;
    wake();
    if (loop.joinable())
      loop.join();
    for (auto& [fd, c] : conns)
      drop(*c);
    conns.clear();
    for (int fd : {listen_fd, epoll_fd, wake_fd, spare_fd})
      if (fd >= 0)
        ::close(fd);
  }

  void wake() {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof(one));
  }

  // Asks the loop to write `c`'s output (from any thread).
  void post(const std::shared_ptr<connection>& c) {
    {
      std::lock_guard<std::mutex> guard{posted_mtx};
      posted.push_back(c);
    }
    wake();
  }

  std::string info_line(const connection& c) const {
    nlohmann::json info{
      {"server_id", server_id},
      {"server_name", opts.name.empty() ? "troupe" : opts.name},
      {"version", "2.9.0"},
      {"proto", 1},
      {"host", opts.host},
      {"port", port},
      {"headers", false},
      {"max_payload", opts.max_payload},
      {"auth_required", auth_required()},
      {"client_id", c.id},
    };
    return "INFO " + info.dump() + "\r\n";
  }

  bool auth_required() const {
    return !opts.token.empty() || !opts.user.empty();
  }

  // Checks the credentials of CONNECT's `j`.
  bool credentials_match(const nlohmann::json& j) const {
    auto text = [&](const char* key) {
      auto i = j.find(key);
      return i != j.end() && i->is_string() ? i->get<std::string>()
                                            : std::string{};
    };
    if (!opts.token.empty() && same_secret(text("auth_token"), opts.token))
      return true;
    return !opts.user.empty() && same_secret(text("user"), opts.user)
           && same_secret(text("pass"), opts.password);
  }

  // -- output

  static bool closing(connection& c) {
    std::lock_guard<std::mutex> guard{c.mtx};
    return c.closing;
  }

  // Queues `bytes` for `c` from the loop thread; false if `c` is closing.
  bool queue(connection& c, std::string_view bytes) {
    std::lock_guard<std::mutex> guard{c.mtx};
    if (c.closing)
      return false;
    c.append(bytes);
    return true;
  }

  // Sends `-ERR '<what>'` and closes `c` once it is written.
  void fail(connection& c, std::string_view what) {
    {
      std::lock_guard<std::mutex> guard{c.mtx};
      if (c.closing)
        return;
      c.append("-ERR '");
      c.append(what);
      c.append("'\r\n");
      c.closing = true;
    }
    ++protocol_errors;
  }

  // Writes what waits for `c`; closes it if it is done or broken. Returns
  // false if `c` was closed.
  bool flush(const std::shared_ptr<connection>& c) {
    bool done = false;
    bool broken = false;
    bool pending = false;
    {
      std::lock_guard<std::mutex> guard{c->mtx};
      if (c->cut) {
        broken = true;
      } else {
        size_t written = 0;
        while (written < c->out.size()) {
          auto n = ::send(c->fd, c->out.data() + written,
                          c->out.size() - written, MSG_NOSIGNAL);
          if (n > 0) {
            written += static_cast<size_t>(n);
            continue;
          }
          if (n < 0 && errno == EINTR)
            continue;
          if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
          broken = true;
          break;
        }
        c->out.erase(0, written);
        c->sent += written;
        while (!c->frame_ends.empty() && c->frame_ends.front() <= c->sent)
          c->frame_ends.pop_front();
        pending = !c->out.empty();
        done = c->closing && !pending;
      }
    }
    if (broken || done) {
      close_connection(c->fd);
      return false;
    }
    if (pending != c->want_out) {
      epoll_event ev{};
      ev.events = EPOLLIN | (pending ? EPOLLOUT : 0u);
      ev.data.fd = c->fd;
      ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
      c->want_out = pending;
    }
    return true;
  }

  // Ends a client's subscription; what the bus dropped for it (its buffer
  // was full) counts as lost.
  void end_sub(client_sub& s) {
    s.handle.unsubscribe();
    dropped += s.handle.stats().dropped;
  }

  // Unsubscribes everything of `c` and closes its socket.
  void drop(connection& c) {
    {
      std::lock_guard<std::mutex> guard{c.mtx};
      c.closing = true;
    }
    for (auto& [sid, s] : c.subs)
      end_sub(*s);
    c.subs.clear();
    if (c.fd >= 0) {
      ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr);
      ::close(c.fd);
      c.fd = -1;
    }
  }

  void close_connection(int fd) {
    auto i = conns.find(fd);
    if (i == conns.end())
      return;
    auto c = i->second;
    conns.erase(i);
    --clients; // before the peer can see the close
    drop(*c);
  }

  // -- operations

  // Delivers `m` to the client of `s` (on a bus thread).
  void deliver(const std::weak_ptr<connection>& weak,
               const std::shared_ptr<client_sub>& s, const bus_message& m) {
    auto c = weak.lock();
    if (!c)
      return;
    auto max = s->max.load(std::memory_order_relaxed);
    auto n = s->delivered.fetch_add(1, std::memory_order_relaxed) + 1;
    if (max != 0 && n > max)
      return; // past its UNSUB count; the loop removes it
    std::string frame;
    frame.reserve(m.subject.size() + s->sid.size() + m.reply_to.size()
                  + m.payload.size() + 40);
    frame += "MSG ";
    frame += m.subject;
    frame += ' ';
    frame += s->sid;
    if (!m.reply_to.empty()) {
      frame += ' ';
      frame += m.reply_to;
    }
    frame += ' ';
    frame += std::to_string(m.payload.size());
    frame += "\r\n";
    frame += m.payload;
    frame += "\r\n";
    bool first = false;
    bool slow = false;
    size_t lost = 0;
    {
      std::lock_guard<std::mutex> guard{c->mtx};
      if (c->closing)
        return;
      if (c->out.size() + frame.size() > opts.max_pending) {
        // A slow consumer: nats-server's answer, it is cut off.
        // What waits is lost with this message, and counted.
        slow = true;
        lost = c->frame_ends.size() + 1;
        c->frame_ends.clear();
        c->out.clear();
        c->append("-ERR 'Slow Consumer'\r\n");
        c->closing = true;
      } else {
        first = c->out.empty();
        c->append(frame, true);
      }
    }
    if (slow) {
      ++slow_consumers;
      dropped += lost;
      out_msgs -= lost - 1; // counted when queued, but never written
      post(c);
      return;
    }
    ++out_msgs;
    out_bytes += m.payload.size();
    if (first)
      post(c);
  }

  void on_connect(connection& c, std::string_view json) {
    auto j = nlohmann::json::parse(json, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      fail(c, "Invalid CONNECT: not a JSON object");
      return;
    }
    auto flag = [&](const char* key) {
      auto i = j.find(key);
      return i != j.end() && i->is_boolean() && i->get<bool>();
    };
    if (!c.authorized) {
      if (!credentials_match(j)) {
        fail(c, "Authorization Violation");
        return;
      }
      c.authorized = true;
    }
    c.verbose = flag("verbose");
    c.pedantic = flag("pedantic");
    if (auto i = j.find("name"); i != j.end() && i->is_string())
      c.name = i->get<std::string>();
    if (c.verbose)
      queue(c, "+OK\r\n");
  }

  void on_sub(const std::shared_ptr<connection>& c, const detail::nats_op& op) {
    if (c->subs.count(op.sid) != 0) {
      if (c->verbose)
        queue(*c, "+OK\r\n");
      return; // as nats-server: a sid in use is left as it is
    }
    if (c->subs.size() >= opts.max_subscriptions) {
      fail(*c, "Maximum Subscriptions Exceeded");
      return;
    }
    if (validate_pattern(op.subject)) {
      queue(*c, "-ERR 'Invalid Subject'\r\n");
      return;
    }
    auto s = std::make_shared<client_sub>();
    s->sid = std::string{op.sid};
    subscription_options sopts;
    sopts.queue_group = std::string{op.queue};
    sopts.capacity = 65536;
    sopts.policy = bus_overflow::drop_newest;
    std::weak_ptr<connection> weak = c;
    auto handle
      = b.subscribe(op.subject, sopts, [this, weak, s](const bus_message& m) {
          deliver(weak, s, m);
        });
    if (!handle) {
      queue(*c, "-ERR 'Invalid Subscription'\r\n");
      return;
    }
    s->handle = std::move(*handle);
    c->subs.emplace(s->sid, std::move(s));
    if (c->verbose)
      queue(*c, "+OK\r\n");
  }

  void on_unsub(connection& c, const detail::nats_op& op) {
    auto i = c.subs.find(op.sid);
    if (i != c.subs.end()) {
      auto& s = *i->second;
      if (op.max_msgs == 0
          || s.delivered.load(std::memory_order_relaxed) >= op.max_msgs) {
        end_sub(s);
        c.subs.erase(i);
      } else {
        s.max = op.max_msgs;
      }
    }
    if (c.verbose)
      queue(c, "+OK\r\n");
  }

  void on_pub(connection& c, const detail::nats_op& op) {
    if (auto err = validate_subject(op.subject)) {
      queue(c, "-ERR 'Invalid Publish Subject'\r\n");
      return;
    }
    ++in_msgs;
    in_bytes += op.payload.size();
    bus_message_view m;
    m.subject = op.subject;
    m.reply_to = op.reply;
    m.payload = op.payload;
    if (auto err = b.publish(m)) {
      queue(c, "-ERR 'Publish Failed'\r\n");
      return;
    }
    if (c.verbose)
      queue(c, "+OK\r\n");
  }

  void on_op(const std::shared_ptr<connection>& c, const detail::nats_op& op) {
    using detail::nats_op_kind;
    if (closing(*c))
      return; // what follows an error is not read
    if (!c->authorized && op.kind != nats_op_kind::connect) {
      fail(*c, "Authorization Violation");
      return;
    }
    switch (op.kind) {
      case nats_op_kind::connect:
        on_connect(*c, op.json);
        break;
      case nats_op_kind::ping:
        queue(*c, "PONG\r\n");
        break;
      case nats_op_kind::pong:
        c->pings_out = 0;
        break;
      case nats_op_kind::sub:
        on_sub(c, op);
        break;
      case nats_op_kind::unsub:
        on_unsub(*c, op);
        break;
      case nats_op_kind::pub:
        on_pub(*c, op);
        break;
      case nats_op_kind::hpub:
        fail(*c, "Headers Not Supported");
        break;
    }
  }

  // Removes the subscriptions that reached their UNSUB count.
  void prune(connection& c) {
    for (auto i = c.subs.begin(); i != c.subs.end();) {
      auto& s = *i->second;
      auto max = s.max.load(std::memory_order_relaxed);
      if (max != 0 && s.delivered.load(std::memory_order_relaxed) >= max) {
        end_sub(s);
        i = c.subs.erase(i);
      } else {
        ++i;
      }
    }
  }

  // -- the loop

  void accept_all() {
    while (true) {
      int fd
        = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0 && (errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
        // Out of descriptors: the waiting connection would keep the
        // listening socket readable and the loop spinning. Use the spare
        // one to take it and close it at once.
        ::close(spare_fd);
        fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0)
          ::close(fd);
        spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        ++protocol_errors;
        continue;
      }
      if (fd < 0)
        return; // EAGAIN (or EINTR, ECONNABORTED: the next event retries)
      if (conns.size() >= opts.max_connections) {
        static constexpr char refusal[]
          = "-ERR 'maximum connections exceeded'\r\n";
        [[maybe_unused]] auto n
          = ::send(fd, refusal, sizeof(refusal) - 1, MSG_NOSIGNAL);
        ::close(fd);
        ++protocol_errors;
        continue;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      detail::nats_limits limits;
      limits.max_control_line = opts.max_control_line;
      limits.max_payload = opts.max_payload;
      auto c = std::make_shared<connection>(limits);
      c->fd = fd;
      c->id = ++next_id;
      c->last_read = clock::now();
      c->opened = c->last_read;
      c->authorized = !auth_required();
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
      conns.emplace(fd, c);
      ++clients;
      ++clients_total;
      queue(*c, info_line(*c));
      flush(c);
    }
  }

  void read_from(const std::shared_ptr<connection>& c) {
    char buf[read_chunk];
    while (true) {
      auto n = ::recv(c->fd, buf, sizeof(buf), 0);
      if (n == 0
          || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK
              && errno != EINTR)) {
        close_connection(c->fd);
        return;
      }
      if (n < 0) {
        if (errno == EINTR)
          continue;
        break;
      }
      c->last_read = clock::now();
      c->pings_out = 0;
      auto err
        = c->parser.feed(std::string_view{buf, static_cast<size_t>(n)},
                         [&](const detail::nats_op& op) { on_op(c, op); });
      if (!err.empty())
        fail(*c, err);
      if (closing(*c))
        break;
      if (static_cast<size_t>(n) < sizeof(buf))
        break;
    }
    prune(*c);
    flush(c);
  }

  void check_silence() {
    auto now = clock::now();
    std::vector<std::shared_ptr<connection>> due;
    std::vector<std::shared_ptr<connection>> unauthorized;
    for (auto& [fd, c] : conns)
      if (!c->authorized && now - c->opened >= opts.auth_timeout)
        unauthorized.push_back(c);
      else if (now - c->last_read >= opts.ping_interval)
        due.push_back(c);
    for (auto& c : unauthorized) {
      fail(*c, "Authentication Timeout");
      flush(c);
    }
    for (auto& c : due) {
      if (c->pings_out >= opts.max_pings_out) {
        fail(*c, "Stale Connection");
      } else {
        ++c->pings_out;
        queue(*c, "PING\r\n");
        c->last_read = now;
      }
      flush(c);
    }
  }

  void run() {
    std::vector<epoll_event> events(256);
    auto next_tick = clock::now() + tick;
    while (!stopping) {
      auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       next_tick - clock::now())
                       .count();
      auto n
        = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()),
                       static_cast<int>(std::max<int64_t>(0, wait_ms)));
      for (int i = 0; i < n; ++i) {
        auto fd = events[i].data.fd;
        if (fd == listen_fd) {
          accept_all();
          continue;
        }
        if (fd == wake_fd) {
          uint64_t count = 0;
          [[maybe_unused]] auto r = ::read(wake_fd, &count, sizeof(count));
          std::vector<std::weak_ptr<connection>> xs;
          {
            std::lock_guard<std::mutex> guard{posted_mtx};
            xs.swap(posted);
          }
          for (auto& w : xs)
            if (auto c = w.lock(); c && conns.count(c->fd) != 0) {
              prune(*c);
              flush(c);
            }
          continue;
        }
        auto it = conns.find(fd);
        if (it == conns.end())
          continue;
        auto c = it->second;
        if (events[i].events & (EPOLLERR | EPOLLHUP)) {
          if (!(events[i].events & EPOLLIN)) {
            close_connection(fd);
            continue;
          }
        }
        if (events[i].events & EPOLLOUT)
          if (!flush(c))
            continue;
        if (events[i].events & EPOLLIN)
          read_from(c);
      }
      if (clock::now() >= next_tick) {
        check_silence();
        next_tick = clock::now() + tick;
      }
    }
  }
};

client_port::client_port(std::unique_ptr<impl> x) : impl_(std::move(x)) {
  // nop
}

client_port::~client_port() = default;

uint16_t client_port::port() const noexcept {
  return impl_->port;
}

client_port_stats client_port::stats() const {
  client_port_stats x;
  x.clients = impl_->clients;
  x.clients_total = impl_->clients_total;
  x.in_msgs = impl_->in_msgs;
  x.in_bytes = impl_->in_bytes;
  x.out_msgs = impl_->out_msgs;
  x.out_bytes = impl_->out_bytes;
  x.slow_consumers = impl_->slow_consumers;
  x.dropped = impl_->dropped;
  x.protocol_errors = impl_->protocol_errors;
  return x;
}

caf::expected<std::unique_ptr<client_port>>
client_port::open(bus& b, client_port_options opts) {
  if (opts.max_payload == 0 || opts.max_control_line < 64
      || opts.max_pending < opts.max_payload || opts.max_connections == 0)
    return caf::make_error(troupe::errc::invalid_option_value,
                           "client port: max_payload must be above 0, "
                           "max_control_line at least 64, max_pending at "
                           "least max_payload, max_connections above 0");
  if (!opts.insecure && !troupe::is_loopback(opts.host))
    return caf::make_error(troupe::errc::insecure_refused,
                           "client port: refusing plain TCP on " + opts.host
                             + ": NATS clients on other hosts need TLS "
                               "(not served yet), or insecure");
  auto x = std::make_unique<impl>(b, std::move(opts));
  auto where = troupe::format_address(x->opts.host, x->opts.port);
  auto sys_error = [&](const char* what) {
    return caf::make_error(troupe::errc::connect_failed,
                           "client port: cannot " + std::string{what} + " "
                             + where + ": " + std::strerror(errno));
  };
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(x->opts.port);
  auto host = x->opts.host == "localhost" ? "127.0.0.1" : x->opts.host;
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
    return caf::make_error(troupe::errc::invalid_option_value,
                           "client port: '" + x->opts.host
                             + "' is not an IPv4 address");
  x->listen_fd
    = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (x->listen_fd < 0)
    return sys_error("create a socket for");
  int one = 1;
  ::setsockopt(x->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(x->listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
      != 0)
    return sys_error("listen on");
  if (::listen(x->listen_fd, 128) != 0)
    return sys_error("listen on");
  socklen_t len = sizeof(addr);
  ::getsockname(x->listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
  x->port = ntohs(addr.sin_port);
  x->epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  x->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (x->epoll_fd < 0 || x->wake_fd < 0)
    return sys_error("set up polling for");
  for (int fd : {x->listen_fd, x->wake_fd}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(x->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
  }
  auto* raw = x.get();
  x->loop = std::thread{[raw] { raw->run(); }};
  return std::unique_ptr<client_port>{new client_port(std::move(x))};
}

} // namespace troupe::bus
