// Diagnosing refused TLS handshakes: `security::diagnose_tls` shakes hands
// with the peer as a client and explains in one sentence what went wrong.

#include <algorithm>
#include <cerrno>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>

#include "troupe/runtime/security.hpp"

#include "openssl_util.hpp"
#include "posix_util.hpp"
#include "tcp_connect.hpp"

namespace troupe::security {

namespace {

// Blocks SIGPIPE in the calling thread while OpenSSL writes to a socket the
// peer may have closed (its socket BIO uses write(), not send(MSG_NOSIGNAL)),
// and discards a SIGPIPE raised meanwhile.
class sigpipe_guard {
public:
  sigpipe_guard() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }

  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;

  ~sigpipe_guard() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec zero{0, 0};
        sigtimedwait(&set_, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

private:
  sigset_t set_;
  sigset_t old_;
  bool was_pending_ = false;
};

// What the callbacks observe during one diagnostic handshake.
struct handshake_state {
  // First certificate verification error, with the names involved.
  long verify_error = X509_V_OK;
  std::string peer_subject;
  std::string peer_issuer;
  // Description of the first alert the server sent (not close_notify).
  int alert = -1;
  // Whether the server sent a TLS 1.3 session ticket: it does so only after
  // it accepted our certificate.
  bool ticket = false;
};

handshake_state* state_of(const SSL* ssl) {
  return static_cast<handshake_state*>(SSL_get_app_data(ssl));
}

int verify_callback(int preverify_ok, X509_STORE_CTX* ctx) {
  if (preverify_ok == 1)
    return 1;
  auto* ssl = static_cast<SSL*>(
    X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* state = ssl != nullptr ? state_of(ssl) : nullptr;
  if (state != nullptr && state->verify_error == X509_V_OK) {
    state->verify_error = X509_STORE_CTX_get_error(ctx);
    if (auto* leaf = X509_STORE_CTX_get0_cert(ctx)) {
      state->peer_subject = detail::common_name(X509_get_subject_name(leaf));
      state->peer_issuer = detail::common_name(X509_get_issuer_name(leaf));
    }
  }
  return 0;
}

void info_callback(const SSL* ssl, int where, int value) {
  if ((where & SSL_CB_READ_ALERT) != SSL_CB_READ_ALERT)
    return;
  auto desc = value & 0xff;
  auto* state = state_of(ssl);
  if (state != nullptr && state->alert < 0 && desc != SSL_AD_CLOSE_NOTIFY)
    state->alert = desc;
}

void message_callback(int write_p, int, int content_type, const void* buf,
                      size_t len, SSL* ssl, void*) {
  if (write_p != 0 || content_type != SSL3_RT_HANDSHAKE || len == 0)
    return;
  auto type = static_cast<const unsigned char*>(buf)[0];
  auto* state = state_of(ssl);
  if (state != nullptr && type == SSL3_MT_NEWSESSION_TICKET)
    state->ticket = true;
}

std::string alert_name(int desc) {
  std::string name = SSL_alert_desc_string_long(desc);
  if (name == "unknown")
    return "alert " + std::to_string(desc);
  return detail::lowercase(name);
}

std::string explain_alert(int desc) {
  auto tag = "(TLS alert: " + alert_name(desc) + ")";
  switch (desc) {
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_DECRYPT_ERROR:
      return "the server refused our certificate " + tag
             + "; it was issued by a different CA, check that both sides use "
               "the same --authkey-file";
    case SSL_AD_CERTIFICATE_EXPIRED:
      return "the server refused our certificate " + tag
             + "; check the clocks of both hosts";
    case SSL_AD_CERTIFICATE_REQUIRED:
      return "the server requires a client certificate and did not get one "
             + tag;
    case SSL_AD_HANDSHAKE_FAILURE:
      return "the server aborted the TLS handshake " + tag
             + "; it may run TLS without cluster certificates";
    default:
      return "the server aborted the TLS handshake " + tag;
  }
}

std::string explain_verify_error(const handshake_state& state,
                                 const std::string& our_ca) {
  if (detail::is_foreign_issuer(state.verify_error))
    return "the server's certificate is not signed by our cluster CA "
           "(different --authkey-file or --tls-ca?): it was issued by '"
           + state.peer_issuer + "', ours is '" + our_ca + "'";
  switch (state.verify_error) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "the server's certificate has expired (check the clocks of both "
             "hosts)";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "the server's certificate is not valid yet (check the clocks of "
             "both hosts)";
    default:
      return std::string{"the server's certificate was rejected: "}
             + X509_verify_cert_error_string(state.verify_error);
  }
}

// Whether the handshake failed because the peer's bytes are no TLS records.
bool is_not_tls(unsigned long code) {
  if (ERR_GET_LIB(code) != ERR_LIB_SSL)
    return false;
  switch (ERR_GET_REASON(code)) {
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_UNEXPECTED_RECORD:
    case SSL_R_WRONG_SSL_VERSION:
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_UNEXPECTED_MESSAGE:
    case SSL_R_BAD_PACKET_LENGTH:
    case SSL_R_LENGTH_MISMATCH:
      return true;
    default:
      return false;
  }
}

// Explains why SSL_connect or SSL_read failed with `ssl_error`.
std::string explain_failure(const SSL* ssl, int ssl_error, int saved_errno,
                            const std::string& our_ca) {
  const auto& state = *state_of(ssl);
  if (state.verify_error != X509_V_OK)
    return explain_verify_error(state, our_ca);
  if (state.alert >= 0)
    return explain_alert(state.alert);
  auto code = ERR_peek_error();
  if (is_not_tls(code))
    return "the server does not speak TLS (plain --insecure node?)";
  auto eof = ssl_error == SSL_ERROR_ZERO_RETURN
             || (ssl_error == SSL_ERROR_SYSCALL && saved_errno == 0)
             || (ERR_GET_LIB(code) == ERR_LIB_SSL
                 && ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
  if (eof)
    return "the server closed the connection during the TLS handshake "
           "without saying why (not a TLS node?)";
  if (ssl_error == SSL_ERROR_SYSCALL)
    return "the TLS handshake failed: " + detail::errno_text(saved_errno);
  return "the TLS handshake failed: " + detail::openssl_error();
}

// Returns the common name of the first certificate in the CA file, or "?".
std::string ca_name(const std::string& path) {
  auto text = detail::read_small_file(path, "CA certificate");
  if (!text)
    return "?";
  auto bio = detail::memory_bio(*text);
  detail::x509_ptr ca{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)};
  if (!ca)
    return "?";
  return detail::common_name(X509_get_subject_name(ca.get()));
}

} // namespace

caf::error diagnose_tls(const std::string& host, uint16_t port,
                        const tls_files& files,
                        std::chrono::milliseconds timeout) {
  return diagnose_tls(host, port, files, timeout, "");
}

caf::error diagnose_tls(const std::string& host, uint16_t port,
                        const tls_files& files,
                        std::chrono::milliseconds timeout,
                        const std::string& passphrase) {
  // Problems on our side are errc::tls_config, what the server did is
  // errc::connect_failed.
  auto ours = [](std::string what) {
    return caf::make_error(errc::tls_config, std::move(what));
  };
  auto theirs = [](std::string what) {
    return caf::make_error(errc::connect_failed, std::move(what));
  };
  auto deadline = detail::clock_type::now() + timeout;
  if (auto err = check_tls_files(files, passphrase))
    return ours("our own TLS files are unusable: " + error_text(err));
  detail::error_queue_guard errors;
  sigpipe_guard no_sigpipe;
  auto our_ca = ca_name(files.ca); // for messages
  detail::ssl_ctx_ptr ctx{SSL_CTX_new(TLS_client_method())};
  detail::passphrase_state pass{&passphrase, false};
  if (!ctx)
    return ours("cannot set up TLS: " + detail::openssl_error());
  SSL_CTX_set_default_passwd_cb(ctx.get(), detail::passphrase_callback);
  SSL_CTX_set_default_passwd_cb_userdata(ctx.get(), &pass);
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1
      || SSL_CTX_load_verify_locations(ctx.get(), files.ca.c_str(), nullptr)
           != 1
      || SSL_CTX_use_certificate_chain_file(ctx.get(), files.cert.c_str()) != 1
      || SSL_CTX_use_PrivateKey_file(ctx.get(), files.key.c_str(),
                                     SSL_FILETYPE_PEM)
           != 1)
    return ours("cannot load our own TLS files: " + detail::openssl_error());
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, verify_callback);
  SSL_CTX_set_info_callback(ctx.get(), info_callback);
  SSL_CTX_set_msg_callback(ctx.get(), message_callback);
  auto fd = detail::connect_tcp(host, port, timeout, deadline);
  if (!fd)
    return theirs("cannot open a TCP connection to " + host + ":"
                  + std::to_string(port) + ": " + error_text(fd.error()));
  detail::ssl_ptr ssl{SSL_new(ctx.get())};
  handshake_state state;
  if (!ssl || SSL_set_fd(ssl.get(), fd->get()) != 1)
    return ours("cannot set up TLS: " + detail::openssl_error());
  SSL_set_app_data(ssl.get(), &state);
  // Client side of the handshake.
  for (;;) {
    ERR_clear_error();
    errno = 0;
    auto rc = SSL_connect(ssl.get());
    if (rc == 1)
      break;
    auto saved_errno = errno;
    auto err = SSL_get_error(ssl.get(), rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      auto ready = detail::wait_fd(
        fd->get(), err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
      if (ready == 0)
        return theirs("the server did not complete the TLS handshake within "
                      + std::to_string(timeout.count())
                      + " ms (not a TLS node, or overloaded?)");
      if (ready < 0)
        return theirs("the TLS handshake failed: " + detail::errno_text(errno));
      continue;
    }
    return theirs(explain_failure(ssl.get(), err, saved_errno, our_ca));
  }
  // With TLS 1.3 the server checks our certificate after our side finished:
  // a rejection arrives as an alert, an acceptance as session tickets (or
  // nothing at all). Wait a while for either, a quarter of the timeout but at
  // least 300 ms (within the deadline); silence means accepted. OpenSSL and
  // so CAF servers send tickets, so this rarely waits for long.
  auto settle = detail::clock_type::now()
                + std::max(std::chrono::milliseconds{300}, timeout / 4);
  if (settle > deadline)
    settle = deadline;
  for (;;) {
    if (state.ticket)
      break;
    ERR_clear_error();
    errno = 0;
    char buf[256];
    auto rc = SSL_read(ssl.get(), buf, sizeof(buf));
    if (rc > 0)
      break; // the server talks to us: accepted
    auto err = SSL_get_error(ssl.get(), rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      if (state.ticket)
        break;
      auto ready = detail::wait_fd(
        fd->get(), err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, settle);
      if (ready == 0)
        break;
      if (ready < 0)
        return theirs("the TLS connection failed: "
                      + detail::errno_text(errno));
      continue;
    }
    if (err == SSL_ERROR_ZERO_RETURN && state.alert < 0)
      break; // a clean close after a complete handshake
    if (state.alert >= 0)
      return theirs(explain_alert(state.alert));
    return theirs("the server closed the connection right after the TLS "
                  "handshake (it may have refused our certificate)");
  }
  ERR_clear_error();
  SSL_shutdown(ssl.get()); // best effort: one close_notify, no waiting
  return caf::none;
}

} // namespace troupe::security
