// The bus subcommands of `troupe`: a standalone bus node, and the clients
// that subscribe, publish, reply and request through one (like nats-server
// and the nats CLI). Each client is a small node of its own that links to
// the node given with --connect.
//
//   $ troupe node --listen 127.0.0.1:4222 &
//   listening on 127.0.0.1:4222
//   $ troupe sub 'orders.>' --connect 127.0.0.1:4222 &
//   $ troupe pub orders.eu.created 'order 42' --connect 127.0.0.1:4222
//   orders.eu.created: order 42                 (printed by sub)

#include "troupe_bus.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/config_option_adder.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include "troupe/bus/bus.hpp"
#include "troupe/bus/client_port.hpp"
#include "troupe/bus/cluster.hpp"
#include "troupe/runtime/net.hpp"
#include "troupe/runtime/run.hpp"
#include "troupe/runtime/security.hpp"

namespace troupe::tools {

namespace {

using namespace std::chrono_literals;
using troupe::bus::bus;
using troupe::bus::bus_cluster;
using troupe::bus::bus_message;
using troupe::bus::client_port;

enum class kind { node, sub, pub, reply, request };

const char* kind_name(kind k) {
  switch (k) {
    case kind::node:
      return "node";
    case kind::sub:
      return "sub";
    case kind::pub:
      return "pub";
    case kind::reply:
      return "reply";
    default:
      return "request";
  }
}

struct address {
  std::string host;
  uint16_t port = 0;

  std::string text() const {
    return host + ":" + std::to_string(port);
  }
};

caf::error usage(const std::string& what) {
  return caf::make_error(errc::invalid_option_value, what);
}

// Reads the credentials NATS clients must send from `path`: a token, or
// USER:PASSWORD, on its first line; the file must be private (mode 0600).
caf::error read_client_auth(const std::string& path,
                            troupe::bus::client_port_options& opts) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return caf::make_error(errc::cannot_open_file,
                           "cannot read --client-auth-file " + path + ": "
                             + std::strerror(errno));
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    return caf::make_error(errc::invalid_option_value,
                           "--client-auth-file " + path
                             + " is accessible by group or others; run: chmod "
                               "600 "
                             + path);
  std::ifstream in{path};
  std::string line;
  if (!in || !std::getline(in, line))
    return caf::make_error(errc::cannot_open_file,
                           "cannot read --client-auth-file " + path);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
    line.pop_back();
  if (line.empty())
    return caf::make_error(errc::invalid_option_value,
                           "--client-auth-file " + path + " is empty");
  if (auto colon = line.find(':'); colon != std::string::npos) {
    opts.user = line.substr(0, colon);
    opts.password = line.substr(colon + 1);
    if (opts.user.empty() || opts.password.empty())
      return caf::make_error(errc::invalid_option_value,
                             "--client-auth-file " + path
                               + ": USER:PASSWORD needs both");
  } else {
    opts.token = line;
  }
  return caf::none;
}

struct bus_config : net_config {
  kind what;
  std::string listen_text;
  std::string client_listen_text;
  std::string client_auth_file;
  std::string connect_text;
  std::string queue;
  uint64_t count = 0;
  caf::timespan timeout = 1s;
  caf::timespan connect_timeout = 5s;
  caf::timespan wait_for_subscriber = caf::timespan{0};
  std::string file;
  // pub: the payload, from TEXT, --file or stdin (TEXT '-').
  std::string payload;

  std::optional<address> listen_at;
  std::optional<address> clients_at;
  troupe::bus::client_port_options client_opts;
  std::vector<address> peers;

  explicit bus_config(kind k) : net_config(role::connect), what(k) {
    name = std::string{kind_name(k)} + "-" + std::to_string(::getpid());
    // Clients print what they are for on stdout; their links are news only
    // when something goes wrong.
    if (k != kind::node)
      log_level = "warn";
    caf::config_option_adder opts{custom_options_, "global"};
    switch (k) {
      case kind::node:
        description("runs a standalone bus node: other nodes and the sub, pub, "
                    "reply and request commands link to it");
        opts
          .add(listen_text, "listen",
               "HOST:PORT to accept links on (port 0: the OS chooses)")
          .add(connect_text, "connect",
               "HOST:PORT[,HOST:PORT...] of nodes to link to (kept up)")
          .add(client_listen_text, "client-listen",
               "HOST:PORT to serve NATS clients on (port 0: the OS chooses; "
               "plain TCP, so loopback unless --insecure)")
          .add(client_auth_file, "client-auth-file",
               "file (mode 0600) with the token, or USER:PASSWORD, that NATS "
               "clients must send");
        break;
      case kind::sub:
        positional("PATTERN");
        description("prints 'SUBJECT: PAYLOAD' for each message on a subject "
                    "that matches PATTERN (wildcards * and >), the payload's "
                    "bytes as they are");
        opts
          .add(queue, "queue",
               "queue group: each message goes to one member of the group")
          .add(count, "count", "exit after this many messages (0: never)");
        break;
      case kind::pub:
        positional("SUBJECT [TEXT | -]");
        description("publishes TEXT (or stdin for '-', or --file) on "
                    "SUBJECT; {n} in TEXT becomes the message's number "
                    "(1, 2, ...); any bytes, NUL included");
        opts.add(count, "count", "publish it this many times (default 1)")
          .add(file, "file", "publish the bytes of this file (no TEXT)")
          .add(wait_for_subscriber, "wait-for-subscriber",
               "first wait up to this long until somebody subscribes");
        break;
      case kind::reply:
        positional("SUBJECT");
        description("answers each request on SUBJECT with its own payload, "
                    "and prints 'SUBJECT: PAYLOAD' for it");
        opts.add(queue, "queue", "queue group of the responders")
          .add(count, "count", "exit after this many requests (0: never)");
        break;
      case kind::request:
        positional("SUBJECT TEXT");
        description("sends TEXT as a request on SUBJECT and prints the reply's "
                    "payload");
        opts.add(timeout, "timeout", "how long to wait for the reply (1s)")
          .add(wait_for_subscriber, "wait-for-subscriber",
               "first wait up to this long until somebody subscribes");
        break;
    }
    if (k != kind::node)
      opts.add(connect_text, "connect", "HOST:PORT of the node to link to");
    opts.add(connect_timeout, "connect-timeout",
             "how long one connect attempt may take (default 5s)");
  }

  caf::error prepare() {
    auto& args = positional_args();
    size_t want = (what == kind::pub && !file.empty())           ? 1
                  : (what == kind::pub || what == kind::request) ? 2
                  : what == kind::node                           ? 0
                                                                 : 1;
    if (args.size() < want)
      return usage(std::string{"missing "}
                   + (what == kind::sub ? "PATTERN" : "SUBJECT")
                   + (want == 2 && args.size() == 1 ? " TEXT" : ""));
    if (args.size() > want)
      return usage("unexpected argument '" + args[want] + "'");
    if (what == kind::sub) {
      if (auto err = troupe::bus::validate_pattern(args[0]))
        return err;
    } else if (want > 0) {
      if (auto err = troupe::bus::validate_subject(args[0]))
        return err;
    }
    if (!listen_text.empty()) {
      address a;
      if (auto err = parse_host_port(listen_text, a.host, a.port, true))
        return err;
      listen_at = a;
      bind = a.host;
    } else if (what == kind::node) {
      return usage("--listen HOST:PORT is required");
    }
    if (!client_listen_text.empty()) {
      address a;
      if (auto err = parse_host_port(client_listen_text, a.host, a.port, true))
        return err;
      clients_at = a;
      client_opts.host = a.host;
      client_opts.port = a.port;
      client_opts.insecure = insecure;
      client_opts.name = name;
      if (!client_auth_file.empty())
        if (auto err = read_client_auth(client_auth_file, client_opts))
          return err;
    } else if (!client_auth_file.empty()) {
      return usage("--client-auth-file needs --client-listen");
    }
    size_t start = 0;
    while (start < connect_text.size()) {
      auto end = connect_text.find(',', start);
      if (end == std::string::npos)
        end = connect_text.size();
      address a;
      if (auto err = parse_host_port(connect_text.substr(start, end - start),
                                     a.host, a.port))
        return err;
      peers.push_back(a);
      start = end + 1;
    }
    if (what != kind::node && peers.size() != 1)
      return usage(peers.empty() ? "--connect HOST:PORT is required"
                                 : "--connect takes one node");
    if (what == kind::pub && count == 0)
      count = 1;
    if (what == kind::pub) {
      if (!file.empty()) {
        std::ifstream in{file, std::ios::binary};
        if (!in)
          return caf::make_error(errc::cannot_open_file,
                                 "cannot read --file " + file);
        payload.assign(std::istreambuf_iterator<char>{in},
                       std::istreambuf_iterator<char>{});
      } else if (args[1] == "-") {
        payload.assign(std::istreambuf_iterator<char>{std::cin},
                       std::istreambuf_iterator<char>{});
      } else {
        payload = args[1];
      }
    }
    // TLS or plain: decided by the least local address involved.
    auto host = listen_at ? listen_at->host : peers.front().host;
    for (auto& p : peers)
      if (!is_loopback(p.host))
        host = p.host;
    return secure(host);
  }
};

// Writes `bytes` to stdout as they are (a NUL included).
void write_out(const std::string& bytes) {
  std::fwrite(bytes.data(), 1, bytes.size(), stdout);
}

void print_message(const bus_message& m) {
  if (m.type == 0) {
    write_out(m.subject + ": ");
    write_out(m.payload);
    write_out("\n");
  } else {
    std::printf("%s: (a typed value, %zu bytes)\n", m.subject.c_str(),
                m.payload.size());
  }
  std::fflush(stdout);
}

/// Links `c` to the node of a client command; prints why not and returns
/// false if that fails within the connect timeout.
bool link(bus_cluster& c, const bus_config& cfg, const char* prog) {
  auto& peer = cfg.peers.front();
  if (auto err = c.connect(peer.host, peer.port, cfg.connect_timeout)) {
    std::fprintf(stderr, "%s: %s\n", prog, error_text(err).c_str());
    return false;
  }
  return true;
}

/// A `bus_config` for kind `K` that `troupe::run` can default-construct.
template <kind K>
struct kind_config : bus_config {
  kind_config() : bus_config(K) {}
};

/// Runs `fn(node&, const bus_config&)` as the program `prog` with `args`.
template <kind K, class F>
int run_bus(const std::string& prog, const args_list& args, F fn) {
  std::vector<std::string> storage;
  storage.push_back(prog);
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : storage)
    argv.push_back(s.data());
  argv.push_back(nullptr);
  return troupe::run<kind_config<K>>(
    static_cast<int>(storage.size()), argv.data(),
    [&](node& n, const kind_config<K>& cfg) { return fn(n, cfg); });
}

/// The body of `sub` and `reply`: subscribes to the pattern, prints each
/// message (and echoes it to its reply subject if `answer`), links to the
/// node, says `banner` on stderr, and runs until `--count` messages or a
/// signal.
int serve(node& n, const bus_config& cfg, const std::string& prog, bool answer,
          const char* banner) {
  bus b{n};
  std::atomic<uint64_t> seen{0};
  std::atomic<bool> done{false};
  troupe::bus::subscription_options opts;
  opts.queue_group = cfg.queue;
  auto& pattern = cfg.positional_args()[0];
  auto sub = b.subscribe(pattern, opts, [&](const bus_message& m) {
    if (done)
      return;
    print_message(m);
    if (answer && !m.reply_to.empty())
      static_cast<void>(b.reply(m, m.payload));
    if (++seen == cfg.count)
      done = true;
  });
  if (!sub) {
    std::fprintf(stderr, "%s: %s\n", prog.c_str(),
                 error_text(sub.error()).c_str());
    n.stop();
    return 2;
  }
  // Messages lost on their way here, as the node we link to counts them
  // (it dropped them: this process was too slow or frozen, or the link went
  // down with them), and those this subscription dropped itself.
  troupe::bus::cluster_options copts;
  copts.on_loss = [&prog](const troupe::bus::cluster_loss& x) {
    std::fprintf(stderr, "%s: lost %llu message%s (node '%s' dropped %s: %s)\n",
                 prog.c_str(), static_cast<unsigned long long>(x.count),
                 x.count == 1 ? "" : "s", x.peer.c_str(),
                 x.count == 1 ? "it" : "them", x.why.c_str());
  };
  bus_cluster c{n, b, cfg, copts};
  if (!link(c, cfg, prog.c_str())) {
    n.stop();
    return 1;
  }
  std::fprintf(stderr, "%s '%s' at %s\n", banner, pattern.c_str(),
               cfg.peers.front().text().c_str());
  uint64_t dropped = 0;
  auto check_drops = [&] {
    auto now = sub->stats().dropped;
    if (now > dropped)
      std::fprintf(stderr,
                   "%s: lost %llu message%s (slow consumer: the "
                   "subscription's buffer stayed full)\n",
                   prog.c_str(), static_cast<unsigned long long>(now - dropped),
                   now - dropped == 1 ? "" : "s");
    dropped = now;
  };
  // Until `done` is set (by the callback) or the node stops (signal).
  // Callbacks do not stop the node themselves: what they published must
  // reach the link first (`bus_cluster::flush`).
  while (!done && !n.wait_for_stop(100ms))
    check_drops();
  if (!done)
    check_drops();
  sub->unsubscribe();
  // The last reply may still be in the link's buffer.
  static_cast<void>(c.flush(5s));
  n.stop();
  return 0;
}

} // namespace

int bus_node(const std::string& prog, const args_list& args) {
  return run_bus<kind::node>(prog, args, [&](node& n, const bus_config& cfg) {
    bus b{n};
    bus_cluster c{n, b, cfg};
    auto port = c.listen(cfg.listen_at->port);
    if (!port) {
      std::fprintf(stderr, "%s: %s\n", prog.c_str(),
                   error_text(port.error()).c_str());
      n.stop();
      return 1;
    }
    std::printf("listening on %s:%u\n", cfg.listen_at->host.c_str(),
                static_cast<unsigned>(*port));
    std::unique_ptr<client_port> clients;
    if (cfg.clients_at) {
      auto opened = client_port::open(b, cfg.client_opts);
      if (!opened) {
        std::fprintf(stderr, "%s: %s\n", prog.c_str(),
                     error_text(opened.error()).c_str());
        n.stop();
        return 1;
      }
      clients = std::move(*opened);
      std::printf("clients on %s:%u\n", cfg.clients_at->host.c_str(),
                  static_cast<unsigned>(clients->port()));
    }
    std::fflush(stdout);
    for (auto& p : cfg.peers)
      static_cast<void>(c.connect(p.host, p.port));
    n.wait_for_stop();
    return 0;
  });
}

int bus_sub(const std::string& prog, const args_list& args) {
  return run_bus<kind::sub>(prog, args, [&](node& n, const bus_config& cfg) {
    return serve(n, cfg, prog, false, "subscribed to");
  });
}

int bus_pub(const std::string& prog, const args_list& args) {
  return run_bus<kind::pub>(prog, args, [&](node& n, const bus_config& cfg) {
    bus b{n};
    bus_cluster c{n, b, cfg};
    auto& subject = cfg.positional_args()[0];
    // {n} is replaced in a TEXT given as an argument only.
    auto literal = cfg.file.empty() && cfg.positional_args()[1] != "-";
    auto& text = cfg.payload;
    int rc = 0;
    if (!link(c, cfg, prog.c_str())) {
      rc = 1;
    } else if (cfg.wait_for_subscriber > caf::timespan{0}
               && !c.wait_for_interest(subject, cfg.wait_for_subscriber)) {
      std::fprintf(stderr, "%s: nobody subscribed to '%s' within the wait\n",
                   prog.c_str(), subject.c_str());
      rc = 1;
    } else {
      auto at = literal ? text.find("{n}") : std::string::npos;
      std::string payload = text;
      for (uint64_t i = 1; i <= cfg.count && rc == 0; ++i) {
        if (at != std::string::npos)
          payload
            = text.substr(0, at) + std::to_string(i) + text.substr(at + 3);
        if (auto err = b.publish(subject, payload)) {
          std::fprintf(stderr, "%s: %s\n", prog.c_str(),
                       error_text(err).c_str());
          rc = 1;
        }
      }
      if (auto err = c.flush(cfg.connect_timeout + 10s); err && rc == 0) {
        std::fprintf(stderr, "%s: %s\n", prog.c_str(), error_text(err).c_str());
        rc = 1;
      }
      // Messages that never left this process: the link's buffer stayed
      // full (the node did not take them), or the link went down.
      if (auto dropped = c.stats().dropped; dropped > 0 && rc == 0) {
        std::fprintf(stderr,
                     "%s: %llu of %llu messages dropped: the link to %s did "
                     "not take them\n",
                     prog.c_str(), static_cast<unsigned long long>(dropped),
                     static_cast<unsigned long long>(cfg.count),
                     cfg.peers.front().text().c_str());
        rc = 1;
      }
    }
    n.stop();
    return rc;
  });
}

int bus_reply(const std::string& prog, const args_list& args) {
  return run_bus<kind::reply>(prog, args, [&](node& n, const bus_config& cfg) {
    return serve(n, cfg, prog, true, "answering requests on");
  });
}

int bus_request(const std::string& prog, const args_list& args) {
  return run_bus<kind::request>(
    prog, args, [&](node& n, const bus_config& cfg) {
      bus b{n};
      bus_cluster c{n, b, cfg};
      int rc = 0;
      auto& subject = cfg.positional_args()[0];
      if (!link(c, cfg, prog.c_str())) {
        rc = 1;
      } else {
        if (cfg.wait_for_subscriber > caf::timespan{0})
          static_cast<void>(
            c.wait_for_interest(subject, cfg.wait_for_subscriber));
        auto r = b.request(subject, cfg.positional_args()[1], cfg.timeout);
        if (r) {
          write_out(r->payload);
          write_out("\n");
          std::fflush(stdout);
        } else {
          auto why = error_text(r.error());
          if (r.error() == troupe::bus::errc::no_responders)
            why = "no responders: " + why;
          std::fprintf(stderr, "%s: %s\n", prog.c_str(), why.c_str());
          rc = 1;
        }
      }
      n.stop();
      return rc;
    });
}

} // namespace troupe::tools
