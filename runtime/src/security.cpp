#include "troupe/runtime/security.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

// Everything here talks to OpenSSL 3 and POSIX directly; no CAF. The cluster
// CA is a pure function of the cluster key (see `derive_ca`), so nodes that
// share the key never exchange CA files: each derives the same CA name and
// key pair and trusts what it signs.

namespace troupe::security {

namespace {

// -- RAII for OpenSSL and POSIX handles ---------------------------------------

template <class T, void (*Free)(T*)>
struct ossl_deleter {
  void operator()(T* ptr) const {
    Free(ptr);
  }
};

template <class T, void (*Free)(T*)>
using ossl_ptr = std::unique_ptr<T, ossl_deleter<T, Free>>;

void free_bn(BIGNUM* ptr) {
  BN_clear_free(ptr);
}

void free_x509_stack(STACK_OF(X509) * ptr) {
  sk_X509_pop_free(ptr, X509_free);
}

using bio_ptr = ossl_ptr<BIO, BIO_free_all>;
using bn_ptr = ossl_ptr<BIGNUM, free_bn>;
using bn_ctx_ptr = ossl_ptr<BN_CTX, BN_CTX_free>;
using ec_group_ptr = ossl_ptr<EC_GROUP, EC_GROUP_free>;
using ec_point_ptr = ossl_ptr<EC_POINT, EC_POINT_free>;
using kdf_ptr = ossl_ptr<EVP_KDF, EVP_KDF_free>;
using kdf_ctx_ptr = ossl_ptr<EVP_KDF_CTX, EVP_KDF_CTX_free>;
using param_bld_ptr = ossl_ptr<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>;
using params_ptr = ossl_ptr<OSSL_PARAM, OSSL_PARAM_free>;
using pkey_ptr = ossl_ptr<EVP_PKEY, EVP_PKEY_free>;
using pkey_ctx_ptr = ossl_ptr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using ssl_ctx_ptr = ossl_ptr<SSL_CTX, SSL_CTX_free>;
using ssl_ptr = ossl_ptr<SSL, SSL_free>;
using x509_ptr = ossl_ptr<X509, X509_free>;
using x509_ext_ptr = ossl_ptr<X509_EXTENSION, X509_EXTENSION_free>;
using x509_name_ptr = ossl_ptr<X509_NAME, X509_NAME_free>;
using x509_stack_ptr = ossl_ptr<STACK_OF(X509), free_x509_stack>;
using x509_store_ptr = ossl_ptr<X509_STORE, X509_STORE_free>;
using x509_store_ctx_ptr = ossl_ptr<X509_STORE_CTX, X509_STORE_CTX_free>;

// Owns a file descriptor.
class unique_fd {
public:
  unique_fd() = default;

  explicit unique_fd(int fd) : fd_(fd) {}

  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;

  unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}

  unique_fd& operator=(unique_fd&& other) noexcept {
    reset(other.release());
    return *this;
  }

  ~unique_fd() {
    reset();
  }

  int get() const {
    return fd_;
  }

  int release() {
    auto fd = fd_;
    fd_ = -1;
    return fd;
  }

  void reset(int fd = -1) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = fd;
  }

private:
  int fd_ = -1;
};

// Leaves OpenSSL's thread-local error queue empty when a function returns, so
// that our failures never show up in CAF's later error reports.
struct error_queue_guard {
  error_queue_guard() {
    ERR_clear_error();
  }
  error_queue_guard(const error_queue_guard&) = delete;
  error_queue_guard& operator=(const error_queue_guard&) = delete;
  ~error_queue_guard() {
    ERR_clear_error();
  }
};

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

// -- small helpers ------------------------------------------------------------

using clock_type = std::chrono::steady_clock;

// Returns strerror(code) starting with a lowercase letter, to fit mid-sentence.
std::string errno_text(int code) {
  std::string text = std::strerror(code);
  if (!text.empty())
    text[0]
      = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

std::string lowercase(std::string text) {
  for (auto& ch : text)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return text;
}

std::string to_hex(const unsigned char* data, size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string result;
  result.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    result += digits[data[i] >> 4];
    result += digits[data[i] & 0x0f];
  }
  return result;
}

int hex_value(char ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

constexpr size_t key_bytes = 32;
constexpr size_t key_digits = 2 * key_bytes;

// Decodes the 64 hex digits of a cluster key; returns false on anything else.
bool decode_key(const std::string& hex, std::vector<unsigned char>& out) {
  if (hex.size() != key_digits)
    return false;
  out.assign(key_bytes, 0);
  for (size_t i = 0; i < key_bytes; ++i) {
    auto hi = hex_value(hex[2 * i]);
    auto lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

// Returns the reason of the oldest OpenSSL error, or `fallback`.
std::string openssl_error(const char* fallback = "unknown OpenSSL error") {
  auto code = ERR_peek_error();
  if (code == 0)
    return fallback;
  if (auto* reason = ERR_reason_error_string(code))
    return reason;
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

// Reads the whole file at `path` (at most 1 MiB) into `out`; returns an empty
// string or "cannot read <what> <path>: <reason>".
std::string read_small_file(const std::string& path, const char* what,
                            std::string& out) {
  if (path.empty())
    return std::string{"no file given for the "} + what;
  unique_fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.get() < 0)
    return std::string{"cannot read the "} + what + " " + path + ": "
           + errno_text(errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return std::string{"cannot read the "} + what + " " + path + ": "
           + errno_text(errno);
  if (!S_ISREG(st.st_mode))
    return std::string{"cannot read the "} + what + " " + path
           + ": not a regular file";
  constexpr off_t max_size = 1 << 20;
  if (st.st_size > max_size)
    return std::string{"the "} + what + " " + path
           + " is too large (more than 1 MiB)";
  out.clear();
  char buf[4096];
  for (;;) {
    auto n = ::read(fd.get(), buf, sizeof(buf));
    if (n == 0)
      break;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return std::string{"cannot read the "} + what + " " + path + ": "
             + errno_text(errno);
    }
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > static_cast<size_t>(max_size))
      return std::string{"the "} + what + " " + path
             + " is too large (more than 1 MiB)";
  }
  return {};
}

bio_ptr memory_bio(const std::string& text) {
  return bio_ptr{BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))};
}

// Writes `text` to `path`, created or truncated, with mode 0600.
std::string write_private_file(const std::string& path,
                               const std::string& text) {
  unique_fd fd{::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                      S_IRUSR | S_IWUSR)};
  if (fd.get() < 0)
    return "cannot create " + path + ": " + errno_text(errno);
  // The file may have existed with a wider mode; O_CREAT's mode would not
  // apply then.
  if (::fchmod(fd.get(), S_IRUSR | S_IWUSR) != 0)
    return "cannot chmod 600 " + path + ": " + errno_text(errno);
  size_t done = 0;
  while (done < text.size()) {
    auto n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return "cannot write " + path + ": " + errno_text(errno);
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd.release()) != 0)
    return "cannot write " + path + ": " + errno_text(errno);
  return {};
}

// Returns the PEM text of `bio_writer` applied to a memory BIO.
template <class F>
std::string to_pem(F bio_writer) {
  bio_ptr bio{BIO_new(BIO_s_mem())};
  if (!bio || bio_writer(bio.get()) != 1)
    return {};
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio.get(), &mem);
  return std::string{mem->data, mem->length};
}

// Returns the common name in `name`, or its one-line form if it has none.
std::string common_name(const X509_NAME* name) {
  if (name == nullptr)
    return "?";
  auto idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx >= 0) {
    auto* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char* utf8 = nullptr;
    auto len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len >= 0) {
      std::string result{reinterpret_cast<char*>(utf8),
                         static_cast<size_t>(len)};
      OPENSSL_free(utf8);
      return result;
    }
  }
  char buf[256];
  X509_NAME_oneline(name, buf, sizeof(buf));
  return buf;
}

// Formats an ASN.1 time as "2024-01-31 12:00:00 UTC".
std::string time_text(const ASN1_TIME* when) {
  tm parts{};
  if (when == nullptr || ASN1_TIME_to_tm(when, &parts) != 1)
    return "?";
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &parts);
  return buf;
}

// Reads every PEM certificate in `text` into `out`; returns how many.
size_t read_certificates(const std::string& text, STACK_OF(X509) * out) {
  auto bio = memory_bio(text);
  size_t count = 0;
  while (auto* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    sk_X509_push(out, cert);
    ++count;
  }
  ERR_clear_error(); // the loop ends with a "no start line" error
  return count;
}

// What the PEM password callback learns about the key it opens.
struct passphrase_state {
  const std::string* passphrase = nullptr;
  bool asked = false;
};

int passphrase_callback(char* buf, int size, int, void* user_data) {
  auto* state = static_cast<passphrase_state*>(user_data);
  state->asked = true;
  if (state->passphrase == nullptr || state->passphrase->empty())
    return -1; // never prompt on the terminal
  auto len = static_cast<int>(state->passphrase->size());
  if (len > size)
    return -1;
  std::memcpy(buf, state->passphrase->data(), static_cast<size_t>(len));
  return len;
}

// Adds the extension `nid` with the config-file `value` to `cert`.
bool add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  x509_ext_ptr ext{X509V3_EXT_conf_nid(nullptr, &ctx, nid, value)};
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

x509_name_ptr make_name(const std::string& cn) {
  x509_name_ptr name{X509_NAME_new()};
  if (!name
      || X509_NAME_add_entry_by_txt(
           name.get(), "CN", MBSTRING_UTF8,
           reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0)
           != 1)
    return nullptr;
  return name;
}

// -- deriving the cluster CA --------------------------------------------------

// Changing any of these changes every cluster's CA: nodes running different
// versions would then stop trusting each other. Bump the "v1" in `ca_info`
// together with whatever else changes.
constexpr char ca_salt[] = "troupe cluster key";
constexpr char ca_info[] = "troupe cluster ca v1";
constexpr char ca_not_before[] = "20200101000000Z";
constexpr char ca_not_after[] = "20991231235959Z";
constexpr long ca_serial = 1;

// Derives the CA's P-256 private key from the 32 key bytes: HKDF-SHA256
// yields 48 bytes, which reduce to a scalar d in [1, n-1] as d = x mod (n-1)
// + 1 (FIPS 186-4 B.4.1; the 128 extra bits make the bias negligible).
pkey_ptr derive_ca_key(const std::vector<unsigned char>& key,
                       std::string& error) {
  unsigned char okm[48];
  kdf_ptr kdf{EVP_KDF_fetch(nullptr, "HKDF", nullptr)};
  kdf_ctx_ptr kctx{kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr};
  if (!kctx) {
    error = "HKDF is not available: " + openssl_error();
    return nullptr;
  }
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
    OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_KEY, const_cast<unsigned char*>(key.data()), key.size()),
    OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_SALT, const_cast<char*>(ca_salt), sizeof(ca_salt) - 1),
    OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_INFO, const_cast<char*>(ca_info), sizeof(ca_info) - 1),
    OSSL_PARAM_construct_end(),
  };
  if (EVP_KDF_derive(kctx.get(), okm, sizeof(okm), params) != 1) {
    error = "HKDF failed: " + openssl_error();
    return nullptr;
  }
  ec_group_ptr group{EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)};
  bn_ctx_ptr bn_ctx{BN_CTX_secure_new()};
  bn_ptr d{BN_secure_new()};
  bn_ptr x{BN_bin2bn(okm, sizeof(okm), nullptr)};
  bn_ptr n_minus_1{group ? BN_dup(EC_GROUP_get0_order(group.get())) : nullptr};
  OPENSSL_cleanse(okm, sizeof(okm));
  ec_point_ptr pub{group ? EC_POINT_new(group.get()) : nullptr};
  unsigned char pub_oct[65];
  size_t pub_len = 0;
  if (!group || !bn_ctx || !d || !x || !n_minus_1 || !pub
      || BN_sub_word(n_minus_1.get(), 1) != 1
      || BN_mod(d.get(), x.get(), n_minus_1.get(), bn_ctx.get()) != 1
      || BN_add_word(d.get(), 1) != 1
      || EC_POINT_mul(group.get(), pub.get(), d.get(), nullptr, nullptr,
                      bn_ctx.get())
           != 1
      || (pub_len = EC_POINT_point2oct(group.get(), pub.get(),
                                       POINT_CONVERSION_UNCOMPRESSED, pub_oct,
                                       sizeof(pub_oct), bn_ctx.get()))
           == 0) {
    error = "cannot derive the CA key: " + openssl_error();
    return nullptr;
  }
  param_bld_ptr bld{OSSL_PARAM_BLD_new()};
  if (!bld
      || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                         "prime256v1", 0)
           != 1
      || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, d.get())
           != 1
      || OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY,
                                          pub_oct, pub_len)
           != 1) {
    error = "cannot build the CA key: " + openssl_error();
    return nullptr;
  }
  params_ptr key_params{OSSL_PARAM_BLD_to_param(bld.get())};
  pkey_ctx_ptr pctx{EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr)};
  EVP_PKEY* raw = nullptr;
  if (!key_params || !pctx || EVP_PKEY_fromdata_init(pctx.get()) != 1
      || EVP_PKEY_fromdata(pctx.get(), &raw, EVP_PKEY_KEYPAIR, key_params.get())
           != 1) {
    error = "cannot build the CA key: " + openssl_error();
    return nullptr;
  }
  return pkey_ptr{raw};
}

// Builds the self-signed CA certificate for `ca_key`. Every field but the
// signature (ECDSA signatures are randomized) is a function of the key, so
// certificates a node issues verify against any other node's CA certificate.
x509_ptr make_ca_certificate(EVP_PKEY* ca_key, std::string& error) {
  unsigned char* der = nullptr;
  auto der_len = i2d_PUBKEY(ca_key, &der);
  if (der_len <= 0) {
    error = "cannot encode the CA key: " + openssl_error();
    return nullptr;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  auto ok = EVP_Digest(der, static_cast<size_t>(der_len), digest, &digest_len,
                       EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (ok != 1) {
    error = "cannot hash the CA key: " + openssl_error();
    return nullptr;
  }
  auto cn = "troupe cluster CA " + to_hex(digest, 4);
  x509_ptr cert{X509_new()};
  auto name = make_name(cn);
  if (!cert || !name || X509_set_version(cert.get(), X509_VERSION_3) != 1
      || ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), ca_serial) != 1
      || X509_set_subject_name(cert.get(), name.get()) != 1
      || X509_set_issuer_name(cert.get(), name.get()) != 1
      || ASN1_TIME_set_string_X509(X509_getm_notBefore(cert.get()),
                                   ca_not_before)
           != 1
      || ASN1_TIME_set_string_X509(X509_getm_notAfter(cert.get()), ca_not_after)
           != 1
      || X509_set_pubkey(cert.get(), ca_key) != 1
      || !add_extension(cert.get(), cert.get(), NID_basic_constraints,
                        "critical,CA:TRUE")
      || !add_extension(cert.get(), cert.get(), NID_key_usage,
                        "critical,keyCertSign,cRLSign")
      || !add_extension(cert.get(), cert.get(), NID_subject_key_identifier,
                        "hash")
      || X509_sign(cert.get(), ca_key, EVP_sha256()) <= 0) {
    error = "cannot build the CA certificate: " + openssl_error();
    return nullptr;
  }
  return cert;
}

// Returns `name` cut to the 64 bytes X.509 allows in a common name, without
// splitting a UTF-8 sequence; an empty name becomes "troupe node".
std::string leaf_common_name(const std::string& name) {
  constexpr size_t max_len = 64;
  if (name.empty())
    return "troupe node";
  if (name.size() <= max_len)
    return name;
  auto len = max_len;
  while (len > 0 && (static_cast<unsigned char>(name[len]) & 0xC0) == 0x80)
    --len;
  return name.substr(0, len);
}

// Issues a certificate for `leaf_key`, signed by the CA.
x509_ptr make_leaf_certificate(X509* ca_cert, EVP_PKEY* ca_key,
                               EVP_PKEY* leaf_key, const std::string& cn,
                               std::string& error) {
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof(serial_bytes)) != 1) {
    error = "cannot get random bytes: " + openssl_error();
    return nullptr;
  }
  serial_bytes[0] &= 0x7f; // positive
  serial_bytes[0] |= 0x40; // and never zero
  bn_ptr serial{BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr)};
  x509_ptr cert{X509_new()};
  auto name = make_name(leaf_common_name(cn));
  if (!serial || !cert || !name
      || X509_set_version(cert.get(), X509_VERSION_3) != 1
      || BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get()))
           == nullptr
      || X509_set_subject_name(cert.get(), name.get()) != 1
      || X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert)) != 1
      || X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr
      || X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600)
           == nullptr
      || X509_set_pubkey(cert.get(), leaf_key) != 1
      || !add_extension(cert.get(), ca_cert, NID_basic_constraints,
                        "critical,CA:FALSE")
      || !add_extension(cert.get(), ca_cert, NID_key_usage,
                        "critical,digitalSignature")
      || !add_extension(cert.get(), ca_cert, NID_ext_key_usage,
                        "serverAuth,clientAuth")
      || !add_extension(cert.get(), ca_cert, NID_subject_key_identifier, "hash")
      || !add_extension(cert.get(), ca_cert, NID_authority_key_identifier,
                        "keyid:always")
      || X509_sign(cert.get(), ca_key, EVP_sha256()) <= 0) {
    error = "cannot build the node certificate: " + openssl_error();
    return nullptr;
  }
  return cert;
}

// -- sockets ------------------------------------------------------------------

// Waits until `fd` is ready for `events` or `deadline` passes. Returns 1 when
// ready, 0 on timeout, -1 on error.
int wait_fd(int fd, short events, clock_type::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - clock_type::now());
    if (left.count() < 0)
      left = std::chrono::milliseconds{0};
    pollfd pfd{fd, events, 0};
    auto rc = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (rc > 0)
      return 1;
    if (rc == 0)
      return 0;
    if (errno != EINTR)
      return -1;
  }
}

std::string timed_out_text(std::chrono::milliseconds timeout) {
  return "timed out after " + std::to_string(timeout.count()) + " ms";
}

// Connects to `host:port` before `deadline`; on success sets `out` to a
// non-blocking socket and returns an empty string, otherwise the reason
// ("connection refused", "timed out after N ms", "cannot resolve host ...").
std::string connect_tcp(const std::string& host, uint16_t port,
                        std::chrono::milliseconds timeout,
                        clock_type::time_point deadline, unique_fd& out) {
  auto name = host;
  if (name.size() > 2 && name.front() == '[' && name.back() == ']')
    name = name.substr(1, name.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  auto rc = ::getaddrinfo(name.c_str(), service.c_str(), &hints, &found);
  if (rc != 0)
    return "cannot resolve host " + host + ": "
           + lowercase(rc == EAI_SYSTEM ? std::strerror(errno)
                                        : ::gai_strerror(rc));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard{found, ::freeaddrinfo};
  std::string error = "cannot resolve host " + host + ": no addresses";
  for (auto* ai = found; ai != nullptr; ai = ai->ai_next) {
    unique_fd fd{::socket(ai->ai_family,
                          ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                          ai->ai_protocol)};
    if (fd.get() < 0) {
      error = errno_text(errno);
      continue;
    }
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        error = errno_text(errno);
        continue;
      }
      auto ready = wait_fd(fd.get(), POLLOUT, deadline);
      if (ready == 0)
        return timed_out_text(timeout);
      if (ready < 0) {
        error = errno_text(errno);
        continue;
      }
      int so_error = 0;
      socklen_t len = sizeof(so_error);
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len) != 0)
        so_error = errno;
      if (so_error != 0) {
        error = errno_text(so_error);
        continue;
      }
    }
    out = std::move(fd);
    return {};
  }
  return error;
}

// -- diagnosing handshakes ----------------------------------------------------

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
      state->peer_subject = common_name(X509_get_subject_name(leaf));
      state->peer_issuer = common_name(X509_get_issuer_name(leaf));
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
  return lowercase(name);
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
  switch (state.verify_error) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return "the server's certificate is not signed by our cluster CA "
             "(different --authkey-file or --tls-ca?): it was issued by '"
             + state.peer_issuer + "', ours is '" + our_ca + "'";
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
    return "the TLS handshake failed: " + errno_text(saved_errno);
  return "the TLS handshake failed: " + openssl_error();
}

} // namespace

// -- key files ----------------------------------------------------------------

std::string write_key_file(const std::string& path) {
  error_queue_guard errors;
  if (path.empty())
    return "no file name given for the cluster key";
  unsigned char bytes[key_bytes];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1)
    return "cannot get random bytes for " + path + ": " + openssl_error();
  auto text = to_hex(bytes, sizeof(bytes)) + "\n";
  OPENSSL_cleanse(bytes, sizeof(bytes));
  unique_fd fd{::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                      S_IRUSR | S_IWUSR)};
  if (fd.get() < 0) {
    auto code = errno;
    OPENSSL_cleanse(&text[0], text.size());
    if (code == EEXIST)
      return path
             + " already exists; refusing to overwrite a cluster key (delete "
               "it first if you really want a new one)";
    return "cannot create " + path + ": " + errno_text(code);
  }
  std::string error;
  // The umask may have taken bits away, never added any; make it exactly 0600.
  if (::fchmod(fd.get(), S_IRUSR | S_IWUSR) != 0)
    error = "cannot chmod 600 " + path + ": " + errno_text(errno);
  size_t done = 0;
  while (error.empty() && done < text.size()) {
    auto n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      error = "cannot write " + path + ": " + errno_text(errno);
    else
      done += static_cast<size_t>(n);
  }
  if (error.empty() && ::fsync(fd.get()) != 0)
    error = "cannot write " + path + ": " + errno_text(errno);
  if (::close(fd.release()) != 0 && error.empty())
    error = "cannot write " + path + ": " + errno_text(errno);
  OPENSSL_cleanse(&text[0], text.size());
  if (!error.empty())
    ::unlink(path.c_str()); // never leave a half-written key behind
  return error;
}

std::string read_key_file(const std::string& path, std::string& key) {
  if (path.empty())
    return "no file name given for the cluster key";
  unique_fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.get() < 0)
    return "cannot read the cluster key " + path + ": " + errno_text(errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return "cannot read the cluster key " + path + ": " + errno_text(errno);
  if (!S_ISREG(st.st_mode))
    return "the cluster key " + path + " is not a regular file";
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o",
                  static_cast<unsigned>(st.st_mode & 07777));
    return "the cluster key " + path
           + " is accessible by group or others (mode " + mode
           + "); run: chmod 600 " + path;
  }
  // A key file holds 65 bytes; anything much longer is not one.
  char buf[256];
  size_t size = 0;
  for (;;) {
    auto n = ::read(fd.get(), buf + size, sizeof(buf) - size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return "cannot read the cluster key " + path + ": " + errno_text(errno);
    if (n == 0 || (size += static_cast<size_t>(n)) == sizeof(buf))
      break;
  }
  std::string text{buf, size};
  OPENSSL_cleanse(buf, sizeof(buf));
  while (!text.empty()
         && std::isspace(static_cast<unsigned char>(text.back())) != 0)
    text.pop_back();
  std::vector<unsigned char> bytes;
  auto valid = decode_key(text, bytes);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  if (!valid) {
    OPENSSL_cleanse(&text[0], text.size());
    return "the cluster key " + path
           + " is not 64 hex digits (make one with: troupe keygen FILE)";
  }
  key = lowercase(text);
  OPENSSL_cleanse(&text[0], text.size());
  return {};
}

// -- certificates -------------------------------------------------------------

std::string issue_from_key(const std::string& key, const std::string& node_name,
                           const std::string& dir, tls_files& out) {
  error_queue_guard errors;
  std::vector<unsigned char> bytes;
  if (!decode_key(key, bytes))
    return "the cluster key is not 64 hex digits";
  std::string error;
  auto ca_key = derive_ca_key(bytes, error);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  if (!ca_key)
    return error;
  auto ca_cert = make_ca_certificate(ca_key.get(), error);
  if (!ca_cert)
    return error;
  pkey_ptr leaf_key{EVP_EC_gen("P-256")};
  if (!leaf_key)
    return "cannot generate the node key: " + openssl_error();
  auto leaf_cert = make_leaf_certificate(ca_cert.get(), ca_key.get(),
                                         leaf_key.get(), node_name, error);
  if (!leaf_cert)
    return error;
  auto ca_pem
    = to_pem([&](BIO* bio) { return PEM_write_bio_X509(bio, ca_cert.get()); });
  auto cert_pem = to_pem(
    [&](BIO* bio) { return PEM_write_bio_X509(bio, leaf_cert.get()); });
  auto key_pem = to_pem([&](BIO* bio) {
    return PEM_write_bio_PrivateKey(bio, leaf_key.get(), nullptr, nullptr, 0,
                                    nullptr, nullptr);
  });
  if (ca_pem.empty() || cert_pem.empty() || key_pem.empty())
    return "cannot encode the certificates: " + openssl_error();
  tls_files files{dir + "/ca.pem", dir + "/node.pem", dir + "/node.key"};
  if (error = write_private_file(files.ca, ca_pem); error.empty())
    if (error = write_private_file(files.cert, cert_pem); error.empty())
      error = write_private_file(files.key, key_pem);
  OPENSSL_cleanse(&key_pem[0], key_pem.size());
  if (!error.empty())
    return error;
  out = std::move(files);
  return {};
}

std::string make_private_dir(std::string& dir) {
  std::string base = "/tmp";
  if (const auto* tmp = std::getenv("TMPDIR"); tmp != nullptr && *tmp != '\0')
    base = tmp;
  while (base.size() > 1 && base.back() == '/')
    base.pop_back();
  auto templ = base + "/troupe-tls-XXXXXX";
  std::vector<char> buf{templ.begin(), templ.end()};
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr)
    return "cannot create a private directory in " + base + ": "
           + errno_text(errno);
  dir = buf.data();
  return {};
}

void remove_private_dir(const std::string& dir) {
  if (dir.empty())
    return;
  if (auto* handle = ::opendir(dir.c_str())) {
    while (auto* entry = ::readdir(handle)) {
      std::string name = entry->d_name;
      if (name != "." && name != "..")
        ::unlink((dir + "/" + name).c_str());
    }
    ::closedir(handle);
  }
  ::rmdir(dir.c_str());
}

std::string check_tls_files(const tls_files& files,
                            const std::string& passphrase) {
  error_queue_guard errors;
  // The CA file: one or more certificates, all trusted.
  std::string text;
  if (auto err = read_small_file(files.ca, "CA certificate", text);
      !err.empty())
    return err;
  x509_stack_ptr cas{sk_X509_new_null()};
  if (read_certificates(text, cas.get()) == 0)
    return "the CA certificate file " + files.ca + " holds no PEM certificate";
  // The certificate file: our certificate, then any intermediates.
  if (auto err = read_small_file(files.cert, "certificate", text); !err.empty())
    return err;
  x509_stack_ptr chain{sk_X509_new_null()};
  if (read_certificates(text, chain.get()) == 0)
    return "the certificate file " + files.cert + " holds no PEM certificate";
  x509_ptr leaf{sk_X509_shift(chain.get())};
  // The private key, possibly encrypted.
  if (auto err = read_small_file(files.key, "private key", text); !err.empty())
    return err;
  passphrase_state pass{&passphrase, false};
  pkey_ptr key;
  {
    auto bio = memory_bio(text);
    key.reset(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, passphrase_callback, &pass));
  }
  OPENSSL_cleanse(&text[0], text.size());
  if (!key) {
    if (pass.asked && passphrase.empty())
      return "the private key " + files.key
             + " is encrypted and no passphrase was given";
    if (pass.asked)
      return "wrong passphrase for the private key " + files.key;
    return "the private key file " + files.key + " holds no PEM private key";
  }
  if (EVP_PKEY_eq(X509_get0_pubkey(leaf.get()), key.get()) != 1)
    return "the private key " + files.key
           + " does not belong to the certificate " + files.cert;
  // The chain up to one of the CAs, now.
  x509_store_ptr store{X509_STORE_new()};
  if (!store)
    return "cannot check the certificates: " + openssl_error();
  for (int i = 0; i < sk_X509_num(cas.get()); ++i)
    X509_STORE_add_cert(store.get(), sk_X509_value(cas.get(), i));
  // Each node is client and server: the certificate must serve for both.
  for (auto purpose : {0, X509_PURPOSE_SSL_CLIENT, X509_PURPOSE_SSL_SERVER}) {
    x509_store_ctx_ptr ctx{X509_STORE_CTX_new()};
    if (!ctx
        || X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), chain.get())
             != 1
        || (purpose != 0
            && X509_STORE_CTX_set_purpose(ctx.get(), purpose) != 1))
      return "cannot check the certificates: " + openssl_error();
    if (X509_verify_cert(ctx.get()) == 1)
      continue;
    auto code = X509_STORE_CTX_get_error(ctx.get());
    auto* bad = X509_STORE_CTX_get_current_cert(ctx.get());
    auto is_leaf = bad == nullptr || X509_cmp(bad, leaf.get()) == 0;
    auto is_ca = false;
    for (int i = 0; !is_leaf && i < sk_X509_num(cas.get()); ++i)
      is_ca = is_ca || X509_cmp(bad, sk_X509_value(cas.get(), i)) == 0;
    auto which = is_leaf ? "the certificate " + files.cert
                 : is_ca ? "the CA certificate " + files.ca
                         : "an intermediate certificate in " + files.cert;
    switch (code) {
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        return "the certificate " + files.cert + " is not signed by the CA in "
               + files.ca + " (issued by '"
               + common_name(X509_get_issuer_name(leaf.get()))
               + "', the CA is '"
               + common_name(X509_get_subject_name(sk_X509_value(cas.get(), 0)))
               + "'; different --authkey-file or --tls-ca?)";
      case X509_V_ERR_CERT_HAS_EXPIRED:
        return which + " expired on " + time_text(X509_get0_notAfter(bad));
      case X509_V_ERR_CERT_NOT_YET_VALID:
        return which + " is not valid before "
               + time_text(X509_get0_notBefore(bad))
               + " (check the clock of this host)";
      case X509_V_ERR_INVALID_PURPOSE:
        return which + " may not be used for TLS "
               + (purpose == X509_PURPOSE_SSL_CLIENT ? "clients" : "servers")
               + " (troupe nodes need extendedKeyUsage serverAuth,clientAuth)";
      default:
        return which + " does not verify against " + files.ca + ": "
               + X509_verify_cert_error_string(code);
    }
  }
  return {};
}

// -- probes -------------------------------------------------------------------

std::string diagnose_tls(const std::string& host, uint16_t port,
                         const tls_files& files,
                         std::chrono::milliseconds timeout) {
  return diagnose_tls(host, port, files, timeout, "");
}

std::string diagnose_tls(const std::string& host, uint16_t port,
                         const tls_files& files,
                         std::chrono::milliseconds timeout,
                         const std::string& passphrase) {
  auto deadline = clock_type::now() + timeout;
  if (auto err = check_tls_files(files, passphrase); !err.empty())
    return "our own TLS files are unusable: " + err;
  error_queue_guard errors;
  sigpipe_guard no_sigpipe;
  // The name of our CA, for messages.
  std::string our_ca = "?";
  {
    std::string text;
    if (read_small_file(files.ca, "CA certificate", text).empty()) {
      auto bio = memory_bio(text);
      x509_ptr ca{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)};
      if (ca)
        our_ca = common_name(X509_get_subject_name(ca.get()));
    }
  }
  ssl_ctx_ptr ctx{SSL_CTX_new(TLS_client_method())};
  passphrase_state pass{&passphrase, false};
  if (!ctx)
    return "cannot set up TLS: " + openssl_error();
  SSL_CTX_set_default_passwd_cb(ctx.get(), passphrase_callback);
  SSL_CTX_set_default_passwd_cb_userdata(ctx.get(), &pass);
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1
      || SSL_CTX_load_verify_locations(ctx.get(), files.ca.c_str(), nullptr)
           != 1
      || SSL_CTX_use_certificate_chain_file(ctx.get(), files.cert.c_str()) != 1
      || SSL_CTX_use_PrivateKey_file(ctx.get(), files.key.c_str(),
                                     SSL_FILETYPE_PEM)
           != 1)
    return "cannot load our own TLS files: " + openssl_error();
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, verify_callback);
  SSL_CTX_set_info_callback(ctx.get(), info_callback);
  SSL_CTX_set_msg_callback(ctx.get(), message_callback);
  unique_fd fd;
  if (auto err = connect_tcp(host, port, timeout, deadline, fd); !err.empty())
    return "cannot open a TCP connection to " + host + ":"
           + std::to_string(port) + ": " + err;
  ssl_ptr ssl{SSL_new(ctx.get())};
  handshake_state state;
  if (!ssl || SSL_set_fd(ssl.get(), fd.get()) != 1)
    return "cannot set up TLS: " + openssl_error();
  SSL_set_app_data(ssl.get(), &state);
  auto timed_out = [&] {
    return "the server did not complete the TLS handshake within "
           + std::to_string(timeout.count())
           + " ms (not a TLS node, or overloaded?)";
  };
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
      auto ready = wait_fd(
        fd.get(), err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
      if (ready == 0)
        return timed_out();
      if (ready < 0)
        return "the TLS handshake failed: " + errno_text(errno);
      continue;
    }
    return explain_failure(ssl.get(), err, saved_errno, our_ca);
  }
  // With TLS 1.3 the server checks our certificate after our side finished:
  // a rejection arrives as an alert, an acceptance as session tickets (or
  // nothing at all). Wait a while for either, a quarter of the timeout but at
  // least 300 ms (within the deadline); silence means accepted. OpenSSL and
  // so CAF servers send tickets, so this rarely waits for long.
  auto settle
    = clock_type::now() + std::max(std::chrono::milliseconds{300}, timeout / 4);
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
      auto ready = wait_fd(
        fd.get(), err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, settle);
      if (ready == 0)
        break;
      if (ready < 0)
        return "the TLS connection failed: " + errno_text(errno);
      continue;
    }
    if (err == SSL_ERROR_ZERO_RETURN && state.alert < 0)
      break; // a clean close after a complete handshake
    if (state.alert >= 0)
      return explain_alert(state.alert);
    return "the server closed the connection right after the TLS handshake "
           "(it may have refused our certificate)";
  }
  ERR_clear_error();
  SSL_shutdown(ssl.get()); // best effort: one close_notify, no waiting
  return {};
}

std::string probe_tcp(const std::string& host, uint16_t port,
                      std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  unique_fd fd;
  return connect_tcp(host, port, timeout, deadline, fd);
}

bool is_loopback(const std::string& host) {
  auto name = lowercase(host);
  if (name.size() > 2 && name.front() == '[' && name.back() == ']')
    name = name.substr(1, name.size() - 2);
  if (name.size() > 1 && name.back() == '.')
    name.pop_back();
  if (name == "localhost" || name == "ip6-localhost" || name == "ip6-loopback")
    return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, name.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, name.c_str(), &v6) != 1)
    return false;
  // ::1, or ::ffff:127.x.y.z (an IPv4 loopback address mapped to IPv6).
  const auto* b = v6.s6_addr;
  auto zeros = [b](int from, int to) {
    for (auto i = from; i < to; ++i)
      if (b[i] != 0)
        return false;
    return true;
  };
  if (zeros(0, 15) && b[15] == 1)
    return true;
  return zeros(0, 10) && b[10] == 0xff && b[11] == 0xff && b[12] == 127;
}

} // namespace troupe::security
