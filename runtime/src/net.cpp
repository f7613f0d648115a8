#include "troupe/runtime/net.hpp"

#include <cstdlib>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/config_option_adder.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/sec.hpp>
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "troupe/runtime/errc.hpp"

// CAF 0.17's TLS sessions (libcaf_openssl) never empty OpenSSL's per-thread
// error queue: they read it only inside CAF_LOG_INFO, which Debian's build
// compiles out. A failed handshake on the port (a reachability probe, a peer
// without the key, a scanner) leaves an error there, and the next SSL_read
// of a healthy connection on the same multiplexer thread that merely has to
// wait for data is reported as SSL_ERROR_SSL: CAF closes that connection and
// its peer's actors are "down" (remote_link_unreachable). OpenSSL requires an
// empty queue before each I/O call (SSL_get_error(3)). These definitions take
// precedence over libssl's in the whole process (libcaf_openssl 0.17.6 makes
// exactly these four calls, through the dynamic linker): they empty the queue
// and call libssl's.
namespace {

template <class F>
F* real_ssl_function(const char* name) {
  auto* fn = reinterpret_cast<F*>(::dlsym(RTLD_NEXT, name));
  if (fn == nullptr)
    std::abort(); // libssl is linked, so this cannot happen
  return fn;
}

} // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  static auto* real = real_ssl_function<int(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static auto* real
    = real_ssl_function<int(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_accept(SSL* ssl) {
  static auto* real = real_ssl_function<int(SSL*)>("SSL_accept");
  ERR_clear_error();
  return real(ssl);
}

int SSL_connect(SSL* ssl) {
  static auto* real = real_ssl_function<int(SSL*)>("SSL_connect");
  ERR_clear_error();
  return real(ssl);
}

} // extern "C"

namespace troupe {

namespace {

caf::error fail(errc code, std::string what) {
  return caf::make_error(code, std::move(what));
}

bool is(const caf::error& err, caf::sec code) {
  return err.category() == caf::atom("system")
         && err.code() == static_cast<uint8_t>(code);
}

std::string address(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos)
    return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
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
    .add(insecure, "insecure", "allow plain TCP off loopback (unencrypted!)");
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
    openssl_cafile = files_.ca;
    openssl_certificate = files_.cert;
    openssl_key = files_.key;
    load<caf::openssl::manager>();
    tls_ = true;
    secured_ = true;
    return caf::none;
  }
  if (is_loopback(host)) {
    secured_ = true;
    return caf::none;
  }
  if (!insecure)
    return fail(errc::insecure_refused,
                "refusing plain TCP on " + host
                  + ", which is not loopback: pass --authkey-file F (make one "
                    "with 'troupe keygen F' and copy it to every node), or "
                    "--insecure to send everything unencrypted");
  insecure_plain_ = true;
  secured_ = true;
  return caf::none;
}

namespace detail {

caf::error not_secured(const std::string& what) {
  return fail(errc::insecure_refused,
              "refusing to " + what
                + ": net_config::secure() was not called (or failed), so "
                  "--authkey-file and --tls-* would be ignored; call it after "
                  "parse() and before the node starts");
}

} // namespace detail

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
  if (!cfg.secured())
    return detail::not_secured("listen on " + address(cfg.bind, port));
  // reuse = true: a restarted master gets its port back although connections
  // of the previous process linger in TIME_WAIT.
  auto res = cfg.tls()
               ? caf::openssl::publish(hdl, port, cfg.bind.c_str(), true)
               : sys.middleman().publish(hdl, port, cfg.bind.c_str(), true);
  if (!res)
    return fail(errc::connect_failed, "cannot listen on "
                                        + address(cfg.bind, port) + ": "
                                        + sys.render(res.error()));
  return res;
}

caf::io::middleman_actor connector(caf::actor_system& sys,
                                   const net_config& cfg) {
  if (cfg.tls())
    return sys.openssl_manager().actor_handle();
  return sys.middleman().actor_handle();
}

caf::error explain_connect_error(caf::actor_system& sys, const caf::error& err,
                                 const std::string& host, uint16_t port,
                                 const net_config& cfg,
                                 std::chrono::milliseconds timeout) {
  auto where = address(host, port);
  auto say = [&](std::string text) {
    return fail(errc::connect_failed, where + ": " + std::move(text));
  };
  if (is(err, caf::sec::disconnect_during_handshake)) {
    if (!cfg.tls())
      return say("the peer closed the connection during the handshake: it "
                 "requires TLS (give this node the same --authkey-file), or "
                 "it is not a troupe node");
    auto why = security::diagnose_tls(host, port, cfg.tls_files(), timeout);
    if (!why)
      return say("TLS handshake refused: the TLS handshake succeeds, so the "
                 "peer dropped the connection afterwards (a different troupe "
                 "version?)");
    return say("TLS handshake refused: " + error_text(why));
  }
  if (is(err, caf::sec::incompatible_application_ids))
    return say("not a troupe-v1 node (application identifiers differ)");
  if (is(err, caf::sec::request_timeout)
      || is(err, caf::sec::connection_timeout))
    return say("no answer within the connect timeout");
  if (is(err, caf::sec::cannot_connect_to_node)) {
    if (auto probe = probe_tcp(host, port, timeout))
      return say(error_text(probe));
    if (cfg.tls())
      return say("the peer accepts TCP connections but no TLS handshake: is "
                 "it a plain-TCP node (--insecure or loopback without a "
                 "key)? Both sides need the same --authkey-file");
  }
  return say(sys.render(err));
}

} // namespace troupe
