// The gate in front of CAF's BASP (see gate.hpp).

#include "gate.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/basp/header.hpp>
#include <caf/io/basp_broker.hpp>
#include <caf/io/doorman.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/network/acceptor_impl.hpp>
#include <caf/io/network/default_multiplexer.hpp>
#include <caf/io/network/stream_impl.hpp>
#include <caf/io/scribe.hpp>
#include <caf/policy/tcp.hpp>
#include <caf/send.hpp>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/net.hpp"

#include "openssl_util.hpp"
#include "tcp_connect.hpp"

namespace troupe::detail {

namespace {

namespace network = caf::io::network;
using mpx_type = network::default_multiplexer;
using native_socket = network::native_socket;
using rw_state = network::rw_state;
using clock_type = std::chrono::steady_clock;

// A frame of BASP arrives in one piece (receive_policy::exactly); larger
// frames are collected in steps of this size.
constexpr size_t chunk_size = 64 * 1024;

// The largest frame before the BASP handshake completed. A handshake is a
// few hundred bytes (node id, application ids, published actor).
constexpr size_t hello_frame_limit = 1024 * 1024;

constexpr char magic[] = "TROUPE";

std::string greeting(gate_status status) {
  std::string out{magic, 6};
  out += static_cast<char>(preamble_version);
  out += static_cast<char>(status);
  return out;
}

// Sends a greeting on a socket nothing was written to yet: 8 bytes fit in
// the empty send buffer, so this does not block and sends all or nothing.
void send_greeting(native_socket fd, gate_status status) {
  auto text = greeting(status);
  [[maybe_unused]] auto n
    = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// Refuses a connection the gate does not serve: answers `status`, reads what
// the peer sent already (closing with unread data would reset the connection
// and could discard the answer at the peer), and closes.
void refuse_socket(native_socket fd, gate_status status) {
  send_greeting(fd, status);
  char sink[64];
  [[maybe_unused]] auto n = ::recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
  ::shutdown(fd, SHUT_WR);
  ::close(fd);
}

// OpenSSL writes with write(2), which raises SIGPIPE on a connection the
// peer closed. The multiplexer thread blocks it for good; a SIGPIPE pending
// for that thread is harmless.
void block_sigpipe_in_this_thread() {
  thread_local bool blocked = false;
  if (blocked)
    return;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  blocked = true;
}

using tls_context = ossl_ptr<SSL_CTX, SSL_CTX_free>;
using tls_session = ossl_ptr<SSL, SSL_free>;

// Mutual TLS 1.3 with the node's certificate, trusting only its CA.
caf::expected<tls_context> make_tls_context(const security::tls_files& files) {
  auto fail = [](const std::string& what) {
    return caf::make_error(errc::tls_config,
                           what + ": " + detail::openssl_error());
  };
  tls_context ctx{SSL_CTX_new(TLS_method())};
  if (!ctx)
    return fail("cannot create a TLS context");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_verify(
    ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE
                                | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), files.cert.c_str()) != 1)
    return fail("cannot load certificate " + files.cert);
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), files.key.c_str(),
                                  SSL_FILETYPE_PEM)
      != 1)
    return fail("cannot load private key " + files.key);
  if (SSL_CTX_check_private_key(ctx.get()) != 1)
    return fail("key " + files.key + " does not match " + files.cert);
  if (SSL_CTX_load_verify_locations(ctx.get(), files.ca.c_str(), nullptr) != 1)
    return fail("cannot load CA certificate " + files.ca);
  // No session resumption, so no tickets: after the handshake the first
  // bytes from the server are its BASP handshake (or an alert).
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  return ctx;
}

constexpr size_t nonce_size = 16;
constexpr size_t mac_size = 32;

std::string random_nonce() {
  std::string out(nonce_size, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&out[0]),
                 static_cast<int>(out.size()))
      != 1)
    throw std::runtime_error("RAND_bytes failed"); // cannot happen on Linux
  return out;
}

// HMAC-SHA256 of `label`, the client's nonce and the server's nonce, keyed
// with the cookie: the proof that one side knows the cookie, fresh for each
// connection.
std::string cookie_mac(const std::string& cookie, const char* label,
                       const std::string& client_nonce,
                       const std::string& server_nonce) {
  std::string msg = label;
  msg += client_nonce;
  msg += server_nonce;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), cookie.data(), static_cast<int>(cookie.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out,
       &len);
  return std::string{reinterpret_cast<char*>(out), mac_size};
}

// Explains a failed TLS handshake in one sentence.
std::string explain_tls_failure(SSL* ssl) {
  auto verify = SSL_get_verify_result(ssl);
  auto text = detail::openssl_error("the connection closed");
  if (verify != X509_V_OK) {
    std::string why = "the peer's certificate was rejected: ";
    why += X509_verify_cert_error_string(verify);
    if (detail::is_foreign_issuer(verify))
      why += " (it is not signed by our cluster CA: different --authkey-file "
             "or --tls-ca?)";
    return why;
  }
  if (text.find("alert") != std::string::npos)
    return "the peer refused our certificate (" + text
           + "): it is not signed by the peer's cluster CA (different "
             "--authkey-file or --tls-ca?)";
  return "the TLS handshake failed: " + text;
}

// Receives exactly `n` bytes before `deadline`. Returns them, or fewer if
// the peer closed the connection or the deadline passed (`timed_out`).
std::string recv_exactly(native_socket fd, size_t n,
                         clock_type::time_point deadline, bool& timed_out) {
  std::string out;
  timed_out = false;
  char buf[64];
  while (out.size() < n) {
    auto got = ::recv(fd, buf, std::min(sizeof(buf), n - out.size()), 0);
    if (got > 0) {
      out.append(buf, static_cast<size_t>(got));
      continue;
    }
    if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
      break;
    if (wait_fd(fd, POLLIN, deadline) == 0) {
      timed_out = true;
      break;
    }
  }
  return out;
}

class gated_scribe;

} // namespace

// Shared by the doorman, the scribes and the warden of one node. What only
// the multiplexer thread touches is marked so; the rest is guarded by `mtx`
// or atomic.
class gate_core {
public:
  gate_core(caf::actor_system& owner, gate_limits lim, tls_context ctx,
            std::string secret)
      : sys(owner), mpx(static_cast<mpx_type&>(owner.middleman().backend())),
        limits(lim), tls(ctx != nullptr), ssl_ctx(std::move(ctx)),
        cookie(std::move(secret)) {
    spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }

  ~gate_core() {
    if (spare_fd >= 0)
      ::close(spare_fd);
  }

  caf::actor_system& sys;
  mpx_type& mpx;
  const gate_limits limits;
  const bool tls;
  tls_context ssl_ctx;
  // Plain TCP: what peers prove they know (net_config::cookie).
  const std::string cookie;

  // Counters (gate_counts); atomic so that tests and logs read them anywhere.
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> refused_busy{0};
  std::atomic<uint64_t> refused_no_fd{0};
  std::atomic<uint64_t> closed_bad_preamble{0};
  std::atomic<uint64_t> closed_bad_cookie{0};
  std::atomic<uint64_t> closed_deadline{0};
  std::atomic<uint64_t> closed_oversized{0};
  std::atomic<uint64_t> closed_tls_failed{0};

  // Connections that have not completed the BASP handshake yet. A scribe
  // leaves when it is established or closed (`untrack`), or when the node
  // stops (`clear_tracked`): a scribe holds the core, so the core must not
  // hold a finished one.
  void track(caf::intrusive_ptr<gated_scribe> ptr);
  void untrack(const gated_scribe* ptr);
  void clear_tracked();
  // Server-side connections still in handshake (multiplexer thread).
  size_t pending_servers();
  // Whether a tracked connection passed its deadline or finished (any
  // thread).
  bool needs_sweep(clock_type::time_point now);
  // Closes expired connections, forgets finished ones (multiplexer thread).
  void sweep();

  // What the peer said when the last connection to it failed at the gate:
  // `errc::refused` if retrying will not help, else `errc::connect_failed`.
  void refuse(const std::string& peer, errc code, std::string why) {
    std::lock_guard<std::mutex> guard{mtx};
    refusals[peer] = caf::make_error(code, std::move(why));
  }

  caf::error take_refusal(const std::string& peer) {
    std::lock_guard<std::mutex> guard{mtx};
    auto i = refusals.find(peer);
    if (i == refusals.end())
      return caf::none;
    auto result = std::move(i->second);
    refusals.erase(i);
    return result;
  }

  // Accepts and closes one connection while no descriptor is free, with the
  // reserve descriptor (multiplexer thread).
  void shed_one(native_socket listener);

  // Logs at most once per second per kind, with the count since (multiplexer
  // thread and client threads: guarded).
  void log_limited(int kind, const std::string& text);

private:
  std::mutex mtx;
  std::vector<caf::intrusive_ptr<gated_scribe>> tracked;
  std::map<std::string, caf::error> refusals;
  int spare_fd = -1;
  clock_type::time_point last_log[4] = {};
  uint64_t suppressed[4] = {};
};

namespace {

// One connection through the gate: troupe's scribe, driven by CAF's BASP
// broker like CAF's own. Its transport is plain TCP until the preamble is
// through, then TLS if the node has a key.
class gated_scribe final : public caf::io::scribe {
public:
  // A server-side connection starts with the client's preamble; a client
  // connection arrives here after `gate::connect` exchanged the preambles and
  // completed TLS (`ssl`), with the server's first BASP bytes waiting.
  gated_scribe(mpx_type& mpx, native_socket fd, std::shared_ptr<gate_core> core,
               bool server, std::string peer, clock_type::time_point deadline,
               tls_session ssl = nullptr)
      : scribe(network::conn_hdl_from_socket(fd)), core_(std::move(core)),
        server_(server), peer_(std::move(peer)), deadline_(deadline),
        phase_(server ? phase::hello : phase::open), ssl_(std::move(ssl)),
        stream_(mpx, fd, transport{this}) {
    if (server_)
      stream_.configure_read(caf::io::receive_policy::exactly(preamble_size));
  }

  void configure_read(caf::io::receive_policy::config config) override {
    requested_ = config;
    if (phase_ == phase::tls || phase_ == phase::open)
      apply_read();
    if (!launched_) {
      launched_ = true;
      stream_.start(this);
    }
  }

  void ack_writes(bool enable) override {
    stream_.ack_writes(enable);
  }

  std::vector<char>& wr_buf() override {
    return stream_.wr_buf();
  }

  std::vector<char>& rd_buf() override {
    return delivering_big_ ? big_ : stream_.rd_buf();
  }

  void graceful_shutdown() override {
    closed_.store(true, std::memory_order_release);
    stream_.graceful_shutdown();
    detach(&stream_.backend(), false);
  }

  // Every way the connection ends passes here: BASP closed it, the peer
  // did, or the gate.
  void detach_from(caf::io::abstract_broker* ptr) override {
    closed_.store(true, std::memory_order_release);
    scribe::detach_from(ptr);
    // The stream still holds this scribe until the multiplexer drops it.
    core_->untrack(this);
  }

  // Holds everything BASP writes back until the preamble (and TLS) is
  // through: an unauthenticated peer learns nothing about this node.
  void flush() override {
    if (phase_ == phase::open)
      stream_.flush(this);
  }

  std::string addr() const override {
    auto x = network::remote_addr_of_fd(stream_.fd());
    return x ? *x : std::string{};
  }

  uint16_t port() const override {
    auto x = network::remote_port_of_fd(stream_.fd());
    return x ? *x : uint16_t{0};
  }

  void add_to_loop() override {
    stream_.activate(this);
  }

  void remove_from_loop() override {
    stream_.passivate();
  }

  bool consume(caf::execution_unit* ctx, const void* buf,
               size_t num_bytes) override {
    if (phase_ == phase::hello || phase_ == phase::nonce
        || phase_ == phase::proof) {
      auto* p = static_cast<const char*>(buf);
      auto ok = phase_ == phase::hello   ? on_client_preamble(p)
                : phase_ == phase::nonce ? on_client_nonce(p)
                                         : on_client_proof(p);
      if (!ok)
        return close(ctx);
      if (phase_ == phase::nonce)
        stream_.configure_read(caf::io::receive_policy::exactly(nonce_size));
      else if (phase_ == phase::proof)
        stream_.configure_read(caf::io::receive_policy::exactly(mac_size));
      else
        apply_read();
      if (phase_ == phase::open)
        stream_.flush(this);
      return true;
    }
    if (big_want_ > 0) {
      auto* first = static_cast<const char*>(buf);
      big_.insert(big_.end(), first, first + num_bytes);
      if (big_.size() < big_want_) {
        auto left = big_want_ - big_.size();
        stream_.configure_read(
          caf::io::receive_policy::exactly(std::min(left, chunk_size)));
        return true;
      }
      auto size = big_want_;
      big_want_ = 0;
      delivering_big_ = true;
      auto ok = scribe::consume(ctx, nullptr, size);
      delivering_big_ = false;
      std::vector<char>{}.swap(big_);
      return after_frame(ctx, ok);
    }
    return after_frame(ctx, scribe::consume(ctx, buf, num_bytes));
  }

  // For the warden (any thread).
  bool established() const {
    return established_.load(std::memory_order_acquire);
  }

  clock_type::time_point deadline() const {
    return deadline_;
  }

  bool server() const {
    return server_;
  }

  // Whether it finished: established, or closed (any thread).
  bool finished() const {
    return established() || closed_.load(std::memory_order_acquire);
  }

  // Closes a connection that missed its deadline (multiplexer thread).
  void expire(caf::execution_unit* ctx) {
    if (finished())
      return;
    if (detached()) {
      // Never reached BASP (the dialler gave up first).
      closed_.store(true, std::memory_order_release);
      return;
    }
    ++core_->closed_deadline;
    auto secs
      = std::chrono::duration<double>(core_->limits.handshake_timeout).count();
    core_->log_limited(
      2, (server_ ? "closed connection from " : "closed connection to ") + peer_
           + ": no troupe handshake within "
           + spdlog::fmt_lib::format("{:g}", secs)
           + " s (--handshake-timeout)");
    if (!server_)
      core_->refuse(peer_, errc::connect_failed,
                    peer_
                      + ": no troupe handshake within the connect "
                        "timeout (--connect-timeout)");
    close(ctx);
  }

private:
  // hello: the client's preamble; nonce, proof: the cookie exchange (plain
  // TCP); tls: the TLS handshake; open: BASP.
  enum class phase { hello, nonce, proof, tls, open };

  struct transport {
    gated_scribe* self;

    rw_state read_some(size_t& result, native_socket fd, void* buf,
                       size_t len) {
      return self->read_some(result, fd, buf, len);
    }

    rw_state write_some(size_t& result, native_socket fd, const void* buf,
                        size_t len) {
      return self->write_some(result, fd, buf, len);
    }

    bool must_read_more(native_socket, size_t threshold) {
      return self->ssl_
             && static_cast<size_t>(SSL_pending(self->ssl_.get())) >= threshold;
    }
  };

  rw_state read_some(size_t& result, native_socket fd, void* buf, size_t len) {
    if (!ssl_)
      return caf::policy::tcp::read_some(result, fd, buf, len);
    result = 0;
    block_sigpipe_in_this_thread();
    if (phase_ == phase::tls) {
      ERR_clear_error();
      auto rc = SSL_do_handshake(ssl_.get());
      if (rc != 1) {
        auto err = SSL_get_error(ssl_.get(), rc);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
          return rw_state::success;
        tls_failed();
        return rw_state::failure;
      }
      phase_ = phase::open;
      stream_.flush(this);
    }
    if (len == 0)
      return rw_state::success;
    ERR_clear_error();
    auto rc = SSL_read(ssl_.get(), buf, static_cast<int>(len));
    if (rc > 0) {
      result = static_cast<size_t>(rc);
      return rw_state::success;
    }
    auto err = SSL_get_error(ssl_.get(), rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
      return rw_state::success;
    if (!server_ && !established() && err == SSL_ERROR_SSL)
      // With TLS 1.3 the server checks our certificate after our side of the
      // handshake finished: its refusal arrives here, as an alert.
      core_->refuse(
        peer_, errc::refused,
        peer_ + ": TLS handshake refused: " + explain_tls_failure(ssl_.get()));
    return rw_state::failure;
  }

  rw_state write_some(size_t& result, native_socket fd, const void* buf,
                      size_t len) {
    if (!ssl_)
      return caf::policy::tcp::write_some(result, fd, buf, len);
    result = 0;
    if (len == 0)
      return rw_state::success;
    block_sigpipe_in_this_thread();
    ERR_clear_error();
    auto rc = SSL_write(ssl_.get(), buf, static_cast<int>(len));
    if (rc > 0) {
      result = static_cast<size_t>(rc);
      return rw_state::success;
    }
    auto err = SSL_get_error(ssl_.get(), rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
      return rw_state::success;
    return rw_state::failure;
  }

  void start_tls() {
    ssl_.reset(SSL_new(core_->ssl_ctx.get()));
    if (!ssl_)
      return;
    SSL_set_fd(ssl_.get(), stream_.fd());
    SSL_set_accept_state(ssl_.get());
    phase_ = phase::tls;
  }

  void tls_failed() {
    ++core_->closed_tls_failed;
    auto why = explain_tls_failure(ssl_.get());
    core_->log_limited(3, "TLS handshake from " + peer_ + " failed: " + why);
  }

  // Server: checks the client's preamble and answers it.
  bool on_client_preamble(const char* p) {
    auto fd = stream_.fd();
    if (std::memcmp(p, magic, 6) != 0 || static_cast<uint8_t>(p[7]) > 1) {
      ++core_->closed_bad_preamble;
      core_->log_limited(1, "closed connection from " + peer_
                              + ": not a troupe peer (no troupe preamble)");
      return false;
    }
    if (static_cast<uint8_t>(p[6]) != preamble_version) {
      ++core_->closed_bad_preamble;
      send_greeting(fd, gate_status::unknown_version);
      core_->log_limited(
        1, "closed connection from " + peer_ + ": troupe protocol version "
             + std::to_string(static_cast<uint8_t>(p[6]))
             + ", this node speaks " + std::to_string(preamble_version));
      return false;
    }
    auto wants_tls = p[7] == 1;
    if (wants_tls != core_->tls) {
      ++core_->closed_bad_preamble;
      send_greeting(fd, core_->tls ? gate_status::tls_required
                                   : gate_status::plain_only);
      core_->log_limited(1, "closed connection from " + peer_
                              + (core_->tls
                                   ? ": it speaks plain TCP, this node "
                                     "requires TLS (no key on its side?)"
                                   : ": it wants TLS, this node has no key "
                                     "(plain TCP)"));
      return false;
    }
    if (!core_->tls) {
      phase_ = phase::nonce;
      return true;
    }
    send_greeting(fd, gate_status::ok);
    start_tls();
    return ssl_ != nullptr;
  }

  // Server, plain TCP: answers the client's nonce with ours and our proof
  // that we know the cookie.
  bool on_client_nonce(const char* p) {
    client_nonce_.assign(p, nonce_size);
    server_nonce_ = random_nonce();
    auto reply = greeting(gate_status::ok) + server_nonce_
                 + cookie_mac(core_->cookie, "troupe-server", client_nonce_,
                              server_nonce_);
    // Nothing was written to this socket before: 56 bytes fit.
    if (::send(stream_.fd(), reply.data(), reply.size(),
               MSG_NOSIGNAL | MSG_DONTWAIT)
        != static_cast<ssize_t>(reply.size()))
      return false;
    phase_ = phase::proof;
    return true;
  }

  // Server, plain TCP: checks the client's proof that it knows the cookie.
  bool on_client_proof(const char* p) {
    auto want = cookie_mac(core_->cookie, "troupe-client", client_nonce_,
                           server_nonce_);
    auto ok = CRYPTO_memcmp(p, want.data(), mac_size) == 0;
    char verdict = ok ? 0 : 1;
    ::send(stream_.fd(), &verdict, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (!ok) {
      ++core_->closed_bad_cookie;
      core_->log_limited(1, "closed connection from " + peer_
                              + ": it does not know this node's cookie "
                                "(another user's node, or another "
                                "--cookie-file)");
      return false;
    }
    phase_ = phase::open;
    return true;
  }

  // Applies what BASP asked for, within the gate's bounds.
  void apply_read() {
    auto flag = static_cast<caf::io::receive_policy_flag>(requested_.first);
    auto size = requested_.second;
    using caf::io::receive_policy;
    if (flag == caf::io::receive_policy_flag::at_most) {
      stream_.configure_read(
        receive_policy::at_most(std::min(size, chunk_size)));
      return;
    }
    auto limit = established() ? core_->limits.max_message : hello_frame_limit;
    if (size > limit) {
      oversized_ = size;
      stream_.configure_read(receive_policy::exactly(1));
      return;
    }
    if (flag == caf::io::receive_policy_flag::exactly && size > chunk_size) {
      big_want_ = size;
      big_.clear();
      stream_.configure_read(receive_policy::exactly(chunk_size));
      return;
    }
    stream_.configure_read(requested_);
  }

  bool after_frame(caf::execution_unit* ctx, bool ok) {
    ++frames_;
    if (oversized_ > 0) {
      ++core_->closed_oversized;
      auto limit
        = established() ? core_->limits.max_message : hello_frame_limit;
      core_->log_limited(
        0, "closed connection " + std::string{server_ ? "from " : "to "} + peer_
             + ": it announced a message of " + std::to_string(oversized_)
             + " bytes, above the limit of " + std::to_string(limit)
             + (established() ? " bytes (--max-message-size)"
                              : " bytes before the handshake"));
      if (!server_)
        core_->refuse(peer_, errc::refused,
                      peer_ + ": the peer sent a message of "
                        + std::to_string(oversized_)
                        + " bytes, above this node's limit");
      return close(ctx);
    }
    // BASP waits for a header again: a whole frame went through. The first
    // frame with a payload is the handshake.
    if (!established() && frames_ >= 2 && !detached()
        && requested_.second == caf::io::basp::header_size) {
      established_.store(true, std::memory_order_release);
      core_->untrack(this); // the stream holds this scribe meanwhile
    }
    return ok;
  }

  // Closes the connection at once (the peer sees it now, not when CAF
  // destroys the scribe) and tells BASP.
  bool close(caf::execution_unit* ctx) {
    // Unread bytes would turn the close into a reset, which can discard what
    // we told the peer (its greeting, a verdict) before it reads it.
    char sink[4096];
    [[maybe_unused]] auto n
      = ::recv(stream_.fd(), sink, sizeof(sink), MSG_DONTWAIT);
    ::shutdown(stream_.fd(), SHUT_RDWR);
    if (!detached())
      io_failure(ctx, network::operation::read);
    closed_.store(true, std::memory_order_release);
    return false;
  }

  std::shared_ptr<gate_core> core_;
  const bool server_;
  const std::string peer_;
  const clock_type::time_point deadline_;
  bool launched_ = false;
  phase phase_;
  std::atomic<bool> established_{false};
  std::atomic<bool> closed_{false};
  size_t frames_ = 0;
  size_t oversized_ = 0;
  caf::io::receive_policy::config requested_{
    caf::io::receive_policy_flag::exactly, caf::io::basp::header_size};
  std::string client_nonce_;
  std::string server_nonce_;
  size_t big_want_ = 0;
  bool delivering_big_ = false;
  std::vector<char> big_;
  tls_session ssl_;
  network::stream_impl<transport> stream_;
};

// Accepts connections and hands them, as gated scribes, to the BASP broker.
class gated_doorman final : public caf::io::doorman {
public:
  gated_doorman(mpx_type& mpx, native_socket fd,
                std::shared_ptr<gate_core> core)
      : doorman(network::accept_hdl_from_socket(fd)), core_(std::move(core)),
        acceptor_(mpx, fd, accept_policy{core_.get()}) {}

  bool new_connection() override {
    if (detached())
      return false;
    auto& mpx = acceptor_.backend();
    auto fd = acceptor_.accepted_socket();
    ++core_->accepted;
    auto peer = network::remote_addr_of_fd(fd);
    auto peer_port = network::remote_port_of_fd(fd);
    auto who = format_address(peer ? *peer : std::string{"?"},
                              peer_port ? *peer_port : uint16_t{0});
    if (core_->pending_servers() >= core_->limits.max_pending) {
      ++core_->refused_busy;
      refuse_socket(fd, gate_status::busy);
      core_->log_limited(1, "refused connection from " + who + ": "
                              + std::to_string(core_->limits.max_pending)
                              + " connections in handshake already "
                                "(--max-pending-connections)");
      return true;
    }
    network::keepalive(fd, true);
    auto deadline = clock_type::now() + core_->limits.handshake_timeout;
    auto scrb
      = caf::make_counted<gated_scribe>(mpx, fd, core_, true, who, deadline);
    core_->track(scrb);
    auto hdl = scrb->hdl();
    parent()->add_scribe(std::move(scrb));
    return doorman::new_connection(&mpx, hdl);
  }

  void graceful_shutdown() override {
    acceptor_.graceful_shutdown();
    detach(&acceptor_.backend(), false);
  }

  void launch() override {
    acceptor_.start(this);
  }

  std::string addr() const override {
    auto x = network::local_addr_of_fd(acceptor_.fd());
    return x ? *x : std::string{};
  }

  uint16_t port() const override {
    auto x = network::local_port_of_fd(acceptor_.fd());
    return x ? *x : uint16_t{0};
  }

  void add_to_loop() override {
    acceptor_.activate(this);
  }

  void remove_from_loop() override {
    acceptor_.passivate();
  }

private:
  struct accept_policy {
    gate_core* core;

    bool try_accept(native_socket& result, native_socket fd) {
      result = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (result >= 0)
        return true;
      result = network::invalid_native_socket;
      auto err = errno;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
        core->shed_one(fd);
      return false;
    }
  };

  std::shared_ptr<gate_core> core_;
  network::acceptor_impl<accept_policy> acceptor_;
};

using tick_atom = caf::atom_constant<caf::atom("gatetick")>;

// Closes connections that missed their handshake deadline. Linked to the
// middleman actor, so it ends when the middleman stops.
caf::behavior warden(caf::event_based_actor* self,
                     std::shared_ptr<gate_core> core, caf::actor middleman) {
  // Handed in at spawn: when this starts, the middleman may be gone already
  // (a node that stopped at once), and linking to it then ends this at once.
  self->link_to(middleman);
  // Scribes that never reached CAF (a dial given up while the node stopped)
  // would keep the core, and the core them.
  self->attach_functor([core] { core->clear_tracked(); });
  self->send(self, tick_atom::value);
  return {
    [=](tick_atom) {
      if (core->needs_sweep(clock_type::now())) {
        auto c = core;
        core->mpx.dispatch([c] { c->sweep(); });
      }
      self->delayed_send(self, std::chrono::milliseconds{200},
                         tick_atom::value);
    },
  };
}

} // namespace

void gate_core::track(caf::intrusive_ptr<gated_scribe> ptr) {
  std::lock_guard<std::mutex> guard{mtx};
  tracked.emplace_back(std::move(ptr));
}

void gate_core::untrack(const gated_scribe* ptr) {
  caf::intrusive_ptr<gated_scribe> gone; // released after the lock
  std::lock_guard<std::mutex> guard{mtx};
  auto i = std::find_if(tracked.begin(), tracked.end(),
                        [&](const auto& x) { return x.get() == ptr; });
  if (i != tracked.end()) {
    gone = std::move(*i);
    tracked.erase(i);
  }
}

void gate_core::clear_tracked() {
  std::vector<caf::intrusive_ptr<gated_scribe>> gone;
  std::lock_guard<std::mutex> guard{mtx};
  gone.swap(tracked);
}

size_t gate_core::pending_servers() {
  std::lock_guard<std::mutex> guard{mtx};
  auto done
    = [](const caf::intrusive_ptr<gated_scribe>& x) { return x->finished(); };
  tracked.erase(std::remove_if(tracked.begin(), tracked.end(), done),
                tracked.end());
  return static_cast<size_t>(std::count_if(
    tracked.begin(), tracked.end(), [](auto& x) { return x->server(); }));
}

bool gate_core::needs_sweep(clock_type::time_point now) {
  std::lock_guard<std::mutex> guard{mtx};
  return std::any_of(tracked.begin(), tracked.end(), [&](auto& x) {
    return x->finished() || x->deadline() <= now;
  });
}

void gate_core::sweep() {
  auto now = clock_type::now();
  std::vector<caf::intrusive_ptr<gated_scribe>> expired;
  {
    std::lock_guard<std::mutex> guard{mtx};
    auto keep = tracked.begin();
    for (auto& x : tracked) {
      if (x->finished())
        continue;
      if (x->deadline() <= now)
        expired.emplace_back(std::move(x));
      else
        *keep++ = std::move(x);
    }
    tracked.erase(keep, tracked.end());
  }
  for (auto& x : expired)
    x->expire(&mpx);
}

void gate_core::shed_one(native_socket listener) {
  if (spare_fd >= 0) {
    ::close(spare_fd);
    spare_fd = -1;
  }
  auto fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) {
    ++refused_no_fd;
    refuse_socket(fd, gate_status::busy);
  }
  spare_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  log_limited(3, "out of file descriptors: refusing new connections ("
                   + std::to_string(refused_no_fd.load())
                   + " so far); service resumes when descriptors free up");
}

void gate_core::log_limited(int kind, const std::string& text) {
  std::unique_lock<std::mutex> guard{mtx};
  auto now = clock_type::now();
  if (now - last_log[kind] < std::chrono::seconds{1}) {
    ++suppressed[kind];
    return;
  }
  last_log[kind] = now;
  auto more = suppressed[kind];
  suppressed[kind] = 0;
  guard.unlock();
  auto& lg = troupe::log(sys);
  if (more > 0)
    lg.warn("{} (and {} more like it in the last second)", text, more);
  else
    lg.warn("{}", text);
}

std::string client_preamble(bool tls, const std::string& nonce) {
  std::string out{magic, 6};
  out += static_cast<char>(preamble_version);
  out += static_cast<char>(tls ? 1 : 0);
  if (!tls)
    out += nonce;
  return out;
}

gate::gate(caf::actor_system& sys, std::shared_ptr<gate_core> core)
    : sys_(sys), core_(std::move(core)) {}

caf::actor gate::basp() const {
  return sys_.middleman().named_broker<caf::io::basp_broker>(caf::atom("BASP"));
}

bool gate::tls() const {
  return core_->tls;
}

caf::expected<uint16_t> gate::listen(const caf::actor& hdl,
                                     const std::string& bind, uint16_t port) {
  auto fd = network::new_tcp_acceptor_impl(port, bind.c_str(), true);
  if (!fd)
    return std::move(fd.error());
  auto dm = caf::make_counted<gated_doorman>(core_->mpx, *fd, core_);
  auto actual = dm->port();
  caf::anon_send(basp(), caf::publish_atom::value,
                 caf::io::doorman_ptr{std::move(dm)}, actual,
                 caf::actor_cast<caf::strong_actor_ptr>(hdl),
                 std::set<std::string>{});
  return actual;
}

caf::expected<caf::io::scribe_ptr>
gate::connect(const std::string& host, uint16_t port,
              std::chrono::milliseconds timeout,
              clock_type::time_point deadline) {
  auto where = format_address(host, port);
  auto ms = std::to_string(timeout.count()) + " ms (--connect-timeout)";
  auto failed = [&](errc code, std::string why) {
    return caf::make_error(code, where + ": " + std::move(why));
  };
  auto fd = connect_tcp(host, port, timeout, deadline);
  if (!fd) {
    auto why = error_text(fd.error());
    if (why.find("timed out") != std::string::npos)
      why += " (--connect-timeout)";
    return caf::make_error(errc::connect_failed,
                           "cannot reach " + where + ": " + why);
  }
  // The preamble, and the server's answer.
  auto client_nonce = core_->tls ? std::string{} : random_nonce();
  auto pre = client_preamble(core_->tls, client_nonce);
  if (::send(fd->get(), pre.data(), pre.size(), MSG_NOSIGNAL | MSG_DONTWAIT)
      != static_cast<ssize_t>(pre.size()))
    return failed(errc::connect_failed,
                  std::string{"cannot send: "} + std::strerror(errno));
  bool timed_out = false;
  auto answer = recv_exactly(fd->get(), preamble_size, deadline, timed_out);
  if (timed_out)
    return failed(errc::connect_failed,
                  "no answer to troupe's preamble within " + ms);
  if (answer.size() < preamble_size)
    return failed(errc::connect_failed,
                  "the peer closed the connection at once: not a troupe node, "
                  "or an older troupe version");
  if (answer.compare(0, 6, magic) != 0)
    return failed(errc::refused,
                  "not a troupe node (it answered something else)");
  switch (static_cast<gate_status>(answer[7])) {
    case gate_status::ok:
      break;
    case gate_status::busy:
      return failed(errc::busy, "busy: too many connections in handshake at "
                                "the peer (its --max-pending-connections), "
                                "or it is out of file descriptors");
    case gate_status::tls_required:
      return failed(errc::refused,
                    "the peer requires TLS: give this node the same "
                    "--authkey-file (or --tls-* files) as the peer");
    case gate_status::plain_only:
      return failed(errc::refused,
                    "the peer speaks plain TCP (it has no key): give it the "
                    "same --authkey-file, or drop the key here");
    default:
      return failed(errc::refused,
                    "the peer speaks another troupe protocol version");
  }
  if (!core_->tls) {
    // The cookie: the server proves it knows it, then we do.
    auto rest
      = recv_exactly(fd->get(), nonce_size + mac_size, deadline, timed_out);
    if (rest.size() < nonce_size + mac_size)
      return failed(errc::connect_failed,
                    timed_out ? "no cookie exchange within " + ms
                              : "the peer closed the connection during the "
                                "cookie exchange");
    auto server_nonce = rest.substr(0, nonce_size);
    auto want
      = cookie_mac(core_->cookie, "troupe-server", client_nonce, server_nonce);
    if (CRYPTO_memcmp(rest.data() + nonce_size, want.data(), mac_size) != 0)
      return failed(errc::refused,
                    "the peer does not know our cookie: it runs as another "
                    "user, or with another --cookie-file (both sides need the "
                    "same file; see the README's Security section)");
    auto proof
      = cookie_mac(core_->cookie, "troupe-client", client_nonce, server_nonce);
    if (::send(fd->get(), proof.data(), proof.size(), MSG_NOSIGNAL)
        != static_cast<ssize_t>(proof.size()))
      return failed(errc::connect_failed,
                    std::string{"cannot send: "} + std::strerror(errno));
    auto verdict = recv_exactly(fd->get(), 1, deadline, timed_out);
    if (verdict != std::string(1, '\0'))
      return failed(verdict.empty() && timed_out ? errc::connect_failed
                                                 : errc::refused,
                    verdict.empty() && timed_out
                      ? "no answer to our cookie within " + ms
                      : "the peer refused our cookie: we run as another user, "
                        "or with another --cookie-file");
  }
  tls_session ssl;
  if (core_->tls) {
    block_sigpipe_in_this_thread();
    ssl.reset(SSL_new(core_->ssl_ctx.get()));
    if (!ssl || SSL_set_fd(ssl.get(), fd->get()) != 1)
      return failed(errc::tls_config,
                    "cannot set up TLS: " + detail::openssl_error());
    SSL_set_connect_state(ssl.get());
    // OpenSSL reads one record at a time: once the handshake is done, what
    // the server sends next (its BASP handshake, or an alert if it refuses
    // our certificate) waits in the socket, where the multiplexer sees it.
    for (;;) {
      ERR_clear_error();
      auto rc = SSL_do_handshake(ssl.get());
      if (rc == 1)
        break;
      auto err = SSL_get_error(ssl.get(), rc);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
        return failed(errc::refused, "TLS handshake refused: "
                                       + explain_tls_failure(ssl.get()));
      auto ready = wait_fd(
        fd->get(), err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
      if (ready == 0)
        return failed(errc::connect_failed, "no TLS handshake within " + ms);
    }
  }
  if (wait_fd(fd->get(), POLLIN, deadline) == 0) {
    return failed(errc::connect_failed, "no troupe handshake within " + ms);
  }
  network::keepalive(fd->get(), true);
  auto scrb = caf::make_counted<gated_scribe>(
    core_->mpx, fd->release(), core_, false, where, deadline, std::move(ssl));
  core_->track(scrb);
  return caf::io::scribe_ptr{std::move(scrb)};
}

caf::error gate::take_refusal(const std::string& host, uint16_t port) {
  return core_->take_refusal(format_address(host, port));
}

gate_counts gate::counts() const {
  gate_counts out;
  out.accepted = core_->accepted;
  out.refused_busy = core_->refused_busy;
  out.refused_no_fd = core_->refused_no_fd;
  out.closed_bad_preamble = core_->closed_bad_preamble;
  out.closed_bad_cookie = core_->closed_bad_cookie;
  out.closed_deadline = core_->closed_deadline;
  out.closed_oversized = core_->closed_oversized;
  out.closed_tls_failed = core_->closed_tls_failed;
  return out;
}

caf::expected<std::shared_ptr<gate>> gate_of(caf::actor_system& sys,
                                             const net_config& cfg,
                                             const std::string& host) {
  static std::mutex mtx;
  std::lock_guard<std::mutex> guard{mtx};
  if (!cfg.secured()) {
    // A program that never called secure(): its key still means TLS.
    if (auto err = const_cast<net_config&>(cfg).secure(host))
      return err;
  }
  auto& slot = cfg.gate_slot();
  if (auto existing = std::static_pointer_cast<gate>(slot);
      existing && &existing->system() == &sys)
    return existing;
  tls_context ctx;
  if (cfg.tls()) {
    auto made = make_tls_context(cfg.tls_files());
    if (!made)
      return std::move(made.error());
    ctx = std::move(*made);
  }
  gate_limits limits;
  limits.handshake_timeout = cfg.handshake_timeout;
  limits.max_pending = cfg.max_pending_connections;
  limits.max_message = cfg.max_message_size;
  auto core
    = std::make_shared<gate_core>(sys, limits, std::move(ctx), cfg.cookie());
  sys.spawn<caf::hidden>(
    warden, core, caf::actor_cast<caf::actor>(sys.middleman().actor_handle()));
  auto result = std::make_shared<gate>(sys, std::move(core));
  slot = result;
  return result;
}

} // namespace troupe::detail
