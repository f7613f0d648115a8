#include "troupe/runtime/net.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/config_option_adder.hpp>
#include <caf/io/middleman.hpp>
#include <caf/sec.hpp>

#include "troupe/runtime/errc.hpp"

#include "gate.hpp"

namespace troupe {

namespace {

caf::error fail(errc code, std::string what) {
  return caf::make_error(code, std::move(what));
}

} // namespace

net_config::net_config(role r) {
  load<caf::io::middleman>();
  // Both sides of a connection need the same values. CAF 0.17 refuses the
  // handshake of a peer with other application identifiers, and its
  // middleman closes a connection on which nothing has arrived for
  // `connection-timeout`; on an idle connection only heartbeats arrive, and
  // only if the peer sends them (`heartbeat-interval`, off by default). So a
  // side with the timeout drops the idle connections of a peer without
  // heartbeats, or with heartbeats rarer than the timeout.
  set("middleman.app-identifiers", std::vector<std::string>{"troupe-v1"});
  set("middleman.heartbeat-interval",
      caf::timespan{std::chrono::milliseconds{500}});
  set("middleman.connection-timeout", caf::timespan{std::chrono::seconds{3}});
  // Networked nodes share the machine with their peers (and on one host with
  // each other): the stealing scheduler's idle threads poll with 50 us sleeps
  // and take the CPU the others need. Measured with task_master and two
  // task_workers on 2 cores: 'sharing' 250k tasks/s, 'stealing' 48-110k.
  set("scheduler.policy", caf::atom("sharing"));
  caf::config_option_adder opts{custom_options_, "global"};
  if (r == role::listen)
    opts.add(bind, "bind",
             "address to listen on (default 127.0.0.1; 0.0.0.0 = all)");
  opts
    .add(authkey_file, "authkey-file",
         "cluster key file (troupe keygen): mutual TLS for every connection")
    .add(tls_ca, "tls-ca", "CA certificate (PEM) that signs the peers")
    .add(tls_cert, "tls-cert", "this node's certificate (PEM)")
    .add(tls_key, "tls-key", "this node's private key (PEM)")
    .add(insecure, "insecure", "allow plain TCP off loopback (unencrypted!)")
    .add(cookie_file, "cookie-file",
         "without a key: the secret plain-TCP peers share (default "
         "~/.troupe/cookie, made on first use)")
    .add(handshake_timeout, "handshake-timeout",
         "close a connection not through the handshake by then (default 5s)")
    .add(max_pending_connections, "max-pending-connections",
         "connections in handshake at once; more get 'busy' (default 64)")
    .add(max_message_size, "max-message-size",
         "largest message a peer may send, in bytes (default 64 MiB)");
}

net_config::~net_config() {
  if (!private_dir_.empty())
    security::remove_private_dir(private_dir_);
}

caf::error net_config::secure(const std::string& host) {
  auto any_file = !tls_ca.empty() || !tls_cert.empty() || !tls_key.empty();
  if (!authkey_file.empty() && any_file)
    return fail(errc::tls_config, "give either --authkey-file or "
                                  "--tls-ca/--tls-cert/--tls-key, not both");
  if (!authkey_file.empty()) {
    // Whatever the cause, secure() reports errc::tls_config.
    auto key = security::read_key_file(authkey_file);
    if (!key)
      return fail(errc::tls_config, error_text(key.error()));
    auto dir = security::make_private_dir();
    if (!dir)
      return fail(errc::tls_config, error_text(dir.error()));
    private_dir_ = std::move(*dir);
    auto files = security::issue_from_key(*key, name, private_dir_);
    if (!files)
      return fail(errc::tls_config, error_text(files.error()));
    files_ = std::move(*files);
  } else if (any_file) {
    if (tls_ca.empty() || tls_cert.empty() || tls_key.empty())
      return fail(errc::tls_config,
                  "mutual TLS needs all three of --tls-ca, --tls-cert and "
                  "--tls-key");
    files_ = security::tls_files{tls_ca, tls_cert, tls_key};
  }
  if (!files_.ca.empty()) {
    if (auto err = security::check_tls_files(files_))
      return fail(errc::tls_config, error_text(err));
    tls_ = true;
    secured_ = true;
    return caf::none;
  }
  if (!is_loopback(host) && !insecure)
    return fail(errc::insecure_refused,
                "refusing plain TCP on " + host
                  + ", which is not loopback: pass --authkey-file F (make one "
                    "with 'troupe keygen F' and copy it to every node), or "
                    "--insecure to send everything unencrypted");
  // Plain TCP: peers authenticate with the cookie.
  auto path
    = cookie_file.empty() ? security::default_cookie_file() : cookie_file;
  auto cookie = security::load_or_create_cookie(path);
  if (!cookie)
    return fail(errc::tls_config, error_text(cookie.error()));
  cookie_ = std::move(*cookie);
  insecure_plain_ = !is_loopback(host);
  secured_ = true;
  return caf::none;
}

std::string format_address(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos)
    return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

caf::error parse_host_port(const std::string& text, std::string& host,
                           uint16_t& port, bool allow_port_zero) {
  auto bad = [&] {
    return fail(errc::invalid_option_value,
                "'" + text + "' is not HOST:PORT (e.g. 127.0.0.1:5000)");
  };
  std::string port_text;
  if (!text.empty() && text.front() == '[') {
    auto end = text.find("]:");
    if (end == std::string::npos)
      return bad();
    host = text.substr(1, end - 1);
    port_text = text.substr(end + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos
        || text.find(':') != colon) // an IPv6 address needs brackets
      return bad();
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  if (host.empty() || port_text.empty() || port_text.size() > 5
      || port_text.find_first_not_of("0123456789") != std::string::npos)
    return bad();
  auto value = std::stoul(port_text);
  if ((value == 0 && !allow_port_zero) || value > 65535)
    return bad();
  port = static_cast<uint16_t>(value);
  return caf::none;
}

caf::expected<uint16_t> listen(caf::actor_system& sys, const caf::actor& hdl,
                               const net_config& cfg, uint16_t port) {
  auto where = format_address(cfg.bind, port);
  auto g = detail::gate_of(sys, cfg, cfg.bind);
  if (!g)
    return std::move(g.error());
  if (auto err
      = detail::check_plain_allowed(cfg, cfg.bind, "listen on " + where))
    return err;
  auto res = (*g)->listen(hdl, cfg.bind, port);
  if (!res)
    return fail(errc::connect_failed,
                "cannot listen on " + where + ": " + sys.render(res.error()));
  return res;
}

namespace detail {

caf::error check_plain_allowed(const net_config& cfg, const std::string& host,
                               const std::string& what) {
  if (cfg.tls() || cfg.insecure || is_loopback(host))
    return caf::none;
  return fail(errc::insecure_refused,
              "refusing to " + what
                + " in plain TCP: it is not loopback; pass --authkey-file F "
                  "(make one with 'troupe keygen F' and copy it to every "
                  "node), or --insecure to send everything unencrypted");
}

} // namespace detail

} // namespace troupe
